from django.apps import AppConfig


class RelayConfig(AppConfig):
    """The transport on top of the domain: browser and agent consumers over streams and
    the agent tunnel. It installs itself as the control plane's way to the agents and as
    the clusters' way to end a tunnel whose credential was revoked."""

    name = "relay"

    def ready(self) -> None:
        from clusters.tunnels import register_tunnel_closer
        from relay.consumers.tunnel import revoke_tunnel
        from relay.streams import open_stream
        from workspaces.controlplane.transport import register_stream_opener

        register_stream_opener(open_stream)
        register_tunnel_closer(revoke_tunnel)
