"""A real OpenID provider for the SSO tests: `node tests/idp/provider.mjs` (the npm package
`oidc-provider`, installed by `make setup`) on a free loopback port.

`IdentityProvider.tokens()` drives its login form over HTTP (authorisation code + PKCE, as
a command-line client would) to get a member's real ID and access tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from tests.harness import ROOT, free_port, stop_process, wait_until

SCRIPT = ROOT / "tests" / "idp" / "provider.mjs"


@dataclass
class IdentityProvider:
    """`oidc-provider` for one portal client; `log_dir` receives `idp-<port>.log`."""

    log_dir: Path
    redirect_uri: str
    logout_uri: str
    client_id: str = "enclave-portal"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    signing_key: Path | None = None
    id_token_ttl: int | None = None
    """Seconds an ID token lasts (oidc-provider's default when None)."""
    id_token_clock_offset: int = 0
    """Seconds added to the clock that stamps ID tokens only (negative: issued earlier)."""
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> IdentityProvider:
        node = shutil.which("node")
        if node is None or not (ROOT / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("node and oidc-provider are needed: run `make setup` (npm ci)")
        env = {
            "PATH": "/usr/bin:/bin",
            "IDP_PORT": str(self.port),
            "IDP_CLIENT_ID": self.client_id,
            "IDP_CLIENT_SECRET": self.client_secret,
            "IDP_REDIRECT_URI": self.redirect_uri,
            "IDP_LOGOUT_URI": self.logout_uri,
        }
        if self.signing_key is not None:
            env["IDP_SIGNING_KEY"] = str(self.signing_key)
        if self.id_token_ttl is not None:
            env["IDP_ID_TOKEN_TTL"] = str(self.id_token_ttl)
        if self.id_token_clock_offset:
            env["IDP_ID_TOKEN_CLOCK_OFFSET"] = str(self.id_token_clock_offset)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"idp-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([node, str(SCRIPT)], cwd=ROOT, env=env, stdout=log, stderr=log)
        wait_until(lambda: self.discovery()["issuer"] == self.issuer, what="IdP discovery")
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @contextmanager
    def restarted(self, **settings) -> Iterator[IdentityProvider]:
        """The provider restarted on its port (same issuer and signing key, no sessions)
        with other `settings` (e.g. `id_token_ttl`), and again with its own afterwards."""
        saved = {name: getattr(self, name) for name in settings}
        self.stop()
        for name, value in settings.items():
            setattr(self, name, value)
        try:
            yield self.start()
        finally:
            self.stop()
            for name, value in saved.items():
                setattr(self, name, value)
            self.start()

    def log(self) -> str:
        path = self.log_dir / f"idp-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def discovery(self) -> dict:
        url = f"{self.issuer}/.well-known/openid-configuration"
        return requests.get(url, timeout=2).json()

    def portal_env(self) -> dict[str, str]:
        """The portal's settings for this provider."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_CLIENT_ID": self.client_id,
            "OIDC_CLIENT_SECRET": self.client_secret,
            "OIDC_ADMIN_CLAIM": "groups",
            "OIDC_ADMIN_VALUE": "enclave-admins",
        }

    def tokens(self, email: str, *, resource: str | None = "urn:enclave:api") -> dict:
        """Sign `email` in through the login form and exchange the code: the token
        response (`access_token` is a JWT for `resource`'s audience)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "scope": "openid email profile",
            "redirect_uri": self.redirect_uri,
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if resource:
            params["resource"] = resource
        browser = requests.Session()
        browser.trust_env = False
        url = f"{self.issuer}/auth?{urlencode(params)}"
        location = self._follow(browser, "GET", url)
        login = {"prompt": "login", "login": email, "password": "any password"}
        location = self._follow(browser, "POST", location, data=login)
        query = parse_qs(urlsplit(location).query)
        assert "code" in query, location
        response = self.exchange(query["code"][0], verifier)
        assert response.status_code == 200, response.text
        return response.json()

    def exchange(self, code: str, verifier: str) -> requests.Response:
        """The token endpoint's answer to the portal's client exchanging `code` (PKCE
        `verifier`), as the portal would."""
        return requests.post(
            self.discovery()["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            },
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )

    def _follow(self, browser: requests.Session, method: str, url: str, **kwargs) -> str:
        """Follow redirects until the login form (its submit URL) or the redirect URI."""
        for _ in range(10):
            response = browser.request(method, url, allow_redirects=False, timeout=10, **kwargs)
            method, kwargs = "GET", {}
            if response.is_redirect:
                url = urljoin(url, response.headers["Location"])
                if url.startswith(self.redirect_uri):
                    return url
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            return urljoin(url, _form_action(response.text))
        raise AssertionError(f"too many redirects at {url}")


def _form_action(html: str) -> str:
    marker = 'action="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def signing_key_file(path: Path) -> tuple[Path, object]:
    """A private RSA JWK (kid `idp-test`) for `IDP_SIGNING_KEY`, and the key itself (to
    mint tokens the provider's JWKS vouches for)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.pop("key_ops", None)  # PyJWT writes ["sign"]: the provider could not verify with it
    jwk.update({"kid": "idp-test", "alg": "RS256", "use": "sig"})
    path.write_text(json.dumps(jwk))
    path.chmod(0o600)
    return path, key
