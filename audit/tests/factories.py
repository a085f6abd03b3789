import factory


class AuditEventFactory(factory.Factory):
    """Audit entries go through the service so the chain stays valid."""

    class Meta:
        model = dict

    action = "test.action"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from audit.services import audit_record

        return audit_record(**kwargs)

    _build = _create
