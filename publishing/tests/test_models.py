"""Publish requests and trust rules: one open request per workspace, one active trust."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from publishing.choices import OPEN_STATUSES, PublishStatus
from publishing.models import PublishRequest, TrustRule
from publishing.tests.factories import PublishRequestFactory, TrustRuleFactory

pytestmark = pytest.mark.django_db


def test_the_factory_builds_a_valid_request():
    PublishRequestFactory().full_clean()


@pytest.mark.parametrize("first", OPEN_STATUSES)
@pytest.mark.parametrize("second", OPEN_STATUSES)
def test_two_open_requests_for_one_workspace_are_refused(first, second):
    existing = PublishRequestFactory(status=first)
    with pytest.raises(IntegrityError), transaction.atomic():
        PublishRequestFactory(
            cluster=existing.cluster, environment_id=existing.environment_id, status=second
        )


def test_full_clean_reports_the_open_request_conflict():
    existing = PublishRequestFactory()
    duplicate = PublishRequestFactory.build(
        cluster=existing.cluster,
        environment_id=existing.environment_id,
        requester=existing.requester,
        blueprint=existing.blueprint,
    )
    with pytest.raises(ValidationError):
        duplicate.full_clean()


@pytest.mark.parametrize(
    "closed", [PublishStatus.REJECTED, PublishStatus.PUBLISHED, PublishStatus.FAILED]
)
def test_a_closed_request_allows_a_new_one(closed):
    existing = PublishRequestFactory(status=closed)
    PublishRequestFactory(cluster=existing.cluster, environment_id=existing.environment_id)
    assert PublishRequest.objects.count() == 2


def test_the_same_environment_id_on_another_cluster_is_another_workspace():
    existing = PublishRequestFactory()
    PublishRequestFactory(environment_id=existing.environment_id)
    assert PublishRequest.objects.count() == 2


def test_a_live_subdomain_belongs_to_one_workspace():
    PublishRequestFactory(subdomain="shop", status=PublishStatus.PUBLISHED)
    PublishRequestFactory(subdomain="shop", status=PublishStatus.PENDING)  # may queue
    with pytest.raises(IntegrityError), transaction.atomic():
        PublishRequestFactory(subdomain="shop", status=PublishStatus.PUBLISHED)


@pytest.mark.parametrize(
    "subdomain", ["", "-shop", "shop-", "my_shop", "My Shop", "shop.example", "x" * 64, "été"]
)
def test_bad_subdomains_are_refused(subdomain):
    request = PublishRequestFactory()
    request.subdomain = subdomain
    with pytest.raises(ValidationError) as excinfo:
        request.full_clean()
    assert "subdomain" in excinfo.value.message_dict


@pytest.mark.parametrize("subdomain", ["a", "shop", "my-shop-2", "0x", "x" * 63])
def test_good_subdomains_are_accepted(subdomain):
    PublishRequestFactory(subdomain=subdomain).full_clean()


@pytest.mark.parametrize(
    "sha", ["abc123", "g" * 40, "A" * 40, "a" * 39, "a" * 41, "a" * 63, " " + "a" * 40]
)
def test_bad_commit_shas_are_refused(sha):
    request = PublishRequestFactory(commit_sha="")
    request.commit_sha = sha
    with pytest.raises(ValidationError) as excinfo:
        request.full_clean()
    assert "commit_sha" in excinfo.value.message_dict


@pytest.mark.parametrize("sha", ["", "0123456789abcdef0123456789abcdef01234567", "f" * 64])
def test_good_commit_shas_are_accepted(sha):
    PublishRequestFactory(commit_sha=sha).full_clean()


def test_unknown_status_is_refused_by_the_database():
    request = PublishRequestFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        PublishRequest.objects.filter(pk=request.pk).update(status="live")


def test_publish_request_str():
    assert str(PublishRequestFactory(subdomain="shop")) == "shop (Pending review)"


# --- trust rules ---------------------------------------------------------------------------


def test_one_active_trust_rule_per_member_and_blueprint():
    rule = TrustRuleFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustRule.objects.create(user=rule.user, blueprint=rule.blueprint)


def test_a_revoked_trust_rule_allows_a_new_grant():
    rule = TrustRuleFactory()
    TrustRule.objects.filter(pk=rule.pk).update(revoked_at=timezone.now())
    again = TrustRule.objects.create(user=rule.user, blueprint=rule.blueprint)
    assert again.is_active
    rule.refresh_from_db()
    assert not rule.is_active
    # And several revoked rules may coexist.
    TrustRule.objects.filter(pk=again.pk).update(revoked_at=timezone.now())
    TrustRule.objects.create(user=rule.user, blueprint=rule.blueprint)
    assert TrustRule.objects.filter(user=rule.user).count() == 3


def test_the_same_member_may_be_trusted_on_several_blueprints():
    rule = TrustRuleFactory()
    TrustRuleFactory(user=rule.user)
    assert TrustRule.objects.filter(user=rule.user, revoked_at__isnull=True).count() == 2


def test_trust_rule_str():
    rule = TrustRuleFactory(user__email="t@example.com", blueprint__name="Python")
    assert str(rule) == "t@example.com trusted on Python"
