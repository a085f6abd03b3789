import factory

from core.models import OrganizationSettings


class OrganizationSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganizationSettings
        django_get_or_create = ("id",)

    id = OrganizationSettings.SINGLETON_PK
    portal_name = "Acme Builders"
