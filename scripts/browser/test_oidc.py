"""Signing in with the company account in a real browser: `funnel serve --demo` configured with an
OpenID Connect provider that runs on this machine (a small one here, signing ES256 ID tokens and
checking the client's credentials, redirect URI and PKCE verifier as a real provider does).

A person opens the invitation link headquarters sent, chooses the company account, "signs in" at
the provider (which sends the browser straight back) and lands in the console signed in; later
they sign in from the sign-in page without an invitation. Screenshots of every step go to
target/browser-screenshots/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import secrets
import socket
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import ROOT, SHOTS
from test_console import DESKTOP, PHONE, Server

CLIENT_ID = "funnel-console"
CLIENT_SECRET = "the test provider's client secret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """An OpenID Connect provider on this machine. `subject` is who signs in at it next; with
    `deny` it sends the browser back with `error=access_denied`."""

    def __init__(self, redirect_uri: str):
        self.redirect_uri = redirect_uri
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.grants: dict[str, dict] = {}
        self.subject = "sub-1"
        self.deny = False
        # Sign-outs at the provider (RP-initiated logout): their query parameters.
        self.logouts: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: dict | None = None, location: str | None = None):
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self.answer(200, provider.discovery())
                elif url.path == "/jwks":
                    self.answer(200, provider.jwks())
                elif url.path == "/authorize":
                    self.answer(302, location=provider.authorize(q))
                elif url.path == "/logout":
                    provider.logouts.append(q)
                    self.answer(302, location=q.get("post_logout_redirect_uri", provider.issuer))
                else:
                    self.answer(404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                if self.path != "/token":
                    self.answer(404)
                    return
                status, body = provider.token(self.headers.get("Authorization", ""), form)
                self.answer(status, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    def jwks(self) -> dict:
        n = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
                          "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}]}

    def authorize(self, q: dict) -> str:
        assert q.get("client_id") == CLIENT_ID, q
        assert q.get("redirect_uri") == self.redirect_uri, q
        assert q.get("code_challenge_method") == "S256", q
        back = {"state": q["state"]}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self.grants[code] = {"challenge": q["code_challenge"], "nonce": q["nonce"],
                                 "subject": self.subject}
            back["code"] = code
        return self.redirect_uri + "?" + urllib.parse.urlencode(back)

    def token(self, authorization: str, form: dict) -> tuple[int, dict]:
        basic = "Basic " + base64.b64encode(
            f"{urllib.parse.quote_plus(CLIENT_ID)}:{urllib.parse.quote_plus(CLIENT_SECRET)}".encode()
        ).decode()
        if authorization != basic:
            return 401, {"error": "invalid_client"}
        grant = self.grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        if (grant is None or b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]
                or form.get("redirect_uri") != self.redirect_uri):
            return 400, {"error": "invalid_grant"}
        now = int(time.time())
        header = {"alg": "ES256", "kid": "k1", "typ": "JWT"}
        claims = {"iss": self.issuer, "sub": grant["subject"], "aud": CLIENT_ID, "iat": now,
                  "exp": now + 300, "nonce": grant["nonce"]}
        signing_input = (b64url(json.dumps(header).encode()) + "."
                         + b64url(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return 200, {"access_token": "an access token", "token_type": "Bearer", "expires_in": 300,
                     "id_token": signing_input + "." + b64url(signature)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def provided():
    """`funnel serve --demo` signing in through a provider on this machine: (server, provider)."""
    funnel = os.environ.get("FUNNEL_BIN", str(ROOT / "target" / "debug" / "funnel"))
    port = free_port()
    provider = Provider(f"http://127.0.0.1:{port}/sign-in/oidc/callback")
    with tempfile.TemporaryDirectory(prefix="funnel-oidc-") as d:
        workdir = pathlib.Path(d)
        secret = workdir / "oidc-secret"
        secret.write_text(CLIENT_SECRET + "\n", encoding="utf-8")
        secret.chmod(0o600)
        env = {
            "FUNNEL__OIDC__ISSUER": provider.issuer,
            "FUNNEL__OIDC__CLIENT_ID": CLIENT_ID,
            "FUNNEL__OIDC__CLIENT_SECRET_FILE": str(secret),
            "FUNNEL__OIDC__REDIRECT_URL": provider.redirect_uri,
        }
        server = Server(funnel, workdir, listen=f"127.0.0.1:{port}", env=env, leads=20)
        try:
            yield server, provider
        finally:
            server.stop()
            provider.httpd.shutdown()


class Browser:
    """A browser context that may reach the server and the provider, and nothing else."""

    def __init__(self, browser, server: Server, provider: Provider, viewport: dict, name: str):
        self.server = server
        self.allowed = {server.host, urllib.parse.urlsplit(provider.issuer).netloc}
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.viewport = viewport
        self.name = name
        self.step = 0
        self.ctx = browser.new_context(viewport=viewport, locale="zh-CN")
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route):
        if urllib.parse.urlsplit(route.request.url).netloc in self.allowed:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort()

    def shot(self, what: str) -> None:
        self.step += 1
        w = self.viewport["width"]
        self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.step:02d}-{what}-{w}.png"),
                             full_page=True)

    def signed_in_as(self, name: str) -> None:
        """Lands in the console (the callback's page moves on by itself) with `name` signed in."""
        self.page.wait_for_url(re.compile(re.escape(self.server.base) + r"/console/inbox$"),
                               timeout=20_000)
        self.page.wait_for_load_state("networkidle")
        assert name in self.page.locator("header .who").inner_text(), self.page.content()[:500]

    def close(self) -> None:
        assert not self.errors, f"console errors: {self.errors}"
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        self.ctx.close()


def test_an_invitation_links_the_company_account_and_it_signs_in_again(provided, browser):
    server, provider = provided
    person = server.people["sales_engineer"]
    invitation = server.api("POST", f"/staff/{person['staff_id']}/invitation", "sales_department",
                            body={})
    provider.subject = "sub-" + person["staff_id"]

    b = Browser(browser, server, provider, PHONE, "oidc")
    page = b.page
    page.goto(server.base + invitation["accept_path"])
    page.wait_for_load_state("networkidle")
    b.shot("invitation")
    assert person["name"] in page.locator("main").inner_text()
    page.locator("#oidc-link").click()
    b.signed_in_as(person["name"])
    b.shot("signed-in")

    # Signing out signs out at the provider too, which sends the browser back to the sign-in page.
    # That page offers the company account; no invitation is needed now.
    page.locator("#sign-out").click()
    page.wait_for_url(server.base + "/sign-in", timeout=20_000)
    page.wait_for_load_state("networkidle")
    assert len(provider.logouts) == 1, provider.logouts
    assert provider.logouts[0].get("client_id") == CLIENT_ID, provider.logouts
    assert provider.logouts[0].get("post_logout_redirect_uri") == server.base + "/sign-in"
    b.shot("sign-in-page")
    page.locator("#oidc-sign-in").click()
    b.signed_in_as(person["name"])
    b.close()

    # Someone the provider knows but no one invited is told so, in Chinese, and not signed in.
    b = Browser(browser, server, provider, DESKTOP, "oidc-stranger")
    provider.subject = "sub-stranger"
    b.page.goto(server.base + "/sign-in")
    b.page.locator("#oidc-sign-in").click()
    b.page.wait_for_url(re.compile(r"/sign-in/oidc/callback"))
    b.page.wait_for_load_state("networkidle")
    b.shot("stranger")
    assert "没有员工使用该公司账号登录" in b.page.locator("main").inner_text()
    assert b.page.locator("header .who").inner_text().strip() == ""

    # The provider refusing is shown by its code.
    provider.deny = True
    try:
        b.page.goto(server.base + "/sign-in")
        b.page.locator("#oidc-sign-in").click()
        b.page.wait_for_url(re.compile(r"/sign-in/oidc/callback"))
        b.page.wait_for_load_state("networkidle")
        b.shot("denied")
        assert "access_denied" in b.page.locator("main").inner_text()
    finally:
        provider.deny = False
    # The problem pages answer 4xx: the browser logs those as failed loads, not script errors.
    b.errors = [e for e in b.errors if "status of 40" not in e]
    b.close()
