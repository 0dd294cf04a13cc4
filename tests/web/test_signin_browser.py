"""Sign-in through the site's OIDC provider, in real headless Chromium against the real service.

The provider is npm ``oidc-provider`` (tests/access/oidc_server.py) with
three users in three groups: alice (hc-admins), bob (hc-operators), carol
(hc-viewers).  Each signs in on the provider's own login page, lands with
the role the group gives, tries writes, and signs out (which also ends the
provider's session: the next user must type their password again).
"""
from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.access.oidc_server import USERS
from tests.factories import template_doc
from tests.web.conftest import Service, _hc

pytestmark = pytest.mark.browser


def hc(service: Service, *args: str) -> str:
    env = {"HC_INSTANCE": str(service.instance), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([*_hc(), *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sign_in(page: Any, service: Service, issuer: str, user: str) -> str:
    """Through the provider's login page; the role the header shows."""
    page.goto(f"{service.url}/login")
    page.click("#login-oidc")
    page.wait_for_url(re.compile(re.escape(issuer) + r"/interaction/"))
    page.fill("#idp-user", user)
    page.fill("#idp-password", USERS[user]["password"])
    page.click("#idp-submit")
    page.wait_for_url(f"{service.url}/")
    assert page.locator("#account-link").inner_text() == user
    return str(page.locator("#account-link").get_attribute("data-role"))


def sign_out(page: Any, service: Service, issuer: str) -> None:
    page.click("header button:has-text('Log out')")
    page.wait_for_url(re.compile(re.escape(issuer)))  # the provider asks to end its session too
    page.get_by_role("button", name=re.compile("sign me out", re.I)).click()
    page.wait_for_url(re.compile(re.escape(service.url) + r"/(\?.*)?$"))  # the provider adds its state
    assert page.locator("#account-link").count() == 0


def post(page: Any, service: Service, path: str) -> int:
    """A write as this page's session would send it (with its CSRF token), without following redirects."""
    token = page.locator("header input[name=csrf_token]").get_attribute("value")
    return int(page.request.post(f"{service.url}{path}", form={"csrf_token": token}, max_redirects=0).status)


@pytest.mark.slow
def test_roles_from_the_providers_groups(browser_context: Any, sso_service: tuple[Service, Any]) -> None:
    service, provider = sso_service
    template = service.instance.parent / "sso.json"
    template.write_text(json.dumps(template_doc("sso", ["local"], script="sleep 30; echo hc-ok value=1",
                                                lifetime=600, jobs_in_flight=1)))
    hc(service, "template", "add", str(template))
    test_id = int(re.search(r"\d+", hc(service, "test", "start", "sso")).group())  # type: ignore[union-attr]
    hc(service, "queue", "add", "spare", "--backend", "local")
    page = browser_context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    assert sign_in(page, service, provider.issuer, "carol") == "viewer"
    page.goto(f"{service.url}/tests/{test_id}")
    assert page.locator("#cancel-test").count() == 0
    assert post(page, service, f"/tests/{test_id}/cancel") == 403
    assert post(page, service, "/queues/spare/delete") == 403
    sign_out(page, service, provider.issuer)

    assert sign_in(page, service, provider.issuer, "bob") == "operator"
    page.goto(f"{service.url}/tests/{test_id}")
    page.click("#cancel-test")
    page.wait_for_url(re.compile(rf"/tests/{test_id}$"))
    assert "cancelled" in page.locator("main").inner_text()
    page.goto(f"{service.url}/queues/spare")
    assert page.locator("#delete-queue").count() == 0
    assert post(page, service, "/queues/spare/delete") == 403
    sign_out(page, service, provider.issuer)

    assert sign_in(page, service, provider.issuer, "alice") == "admin"
    page.goto(f"{service.url}/queues/spare")
    page.click("#delete-queue")
    page.wait_for_url(f"{service.url}/queues")
    assert "queue spare deleted" in page.locator(".flash.ok").inner_text()
    page.goto(f"{service.url}/audit")
    audit = page.locator("main").inner_text()
    assert "carol" in audit and "bob" in audit and "alice" in audit and "403" in audit
    sign_out(page, service, provider.issuer)
