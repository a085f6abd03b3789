from datetime import timedelta

import factory
from django.utils import timezone

from accounts.choices import MemberStatus, Role
from accounts.models import ApiToken, User, UserTag


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"member{n}@example.com")
    # Deterministic, so a text search in one test cannot match a random name.
    full_name = factory.Sequence(lambda n: f"Member {n}")
    role = Role.USER
    status = MemberStatus.ACTIVE
    password = factory.django.Password("correct horse battery staple")


class AdminFactory(UserFactory):
    email = factory.Sequence(lambda n: f"admin{n}@example.com")
    role = Role.ADMIN


class UserTagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserTag

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """Builds a token row; the raw value is on `.raw` (only in tests)."""

    class Meta:
        model = ApiToken
        exclude = ("generated",)

    user = factory.SubFactory(UserFactory)
    name = "test token"
    generated = factory.LazyFunction(ApiToken.generate)
    raw = factory.LazyAttribute(lambda o: o.generated[0])
    prefix = factory.LazyAttribute(lambda o: o.generated[1])
    token_hash = factory.LazyAttribute(lambda o: o.generated[2])
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        raw = kwargs.pop("raw")
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw = raw
        return obj

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raw = kwargs.pop("raw")
        obj = super()._build(model_class, *args, **kwargs)
        obj.raw = raw
        return obj
