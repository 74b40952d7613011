"""Scenario 5c, one user's page against another user's session (issue 20): bob serves a page from his own server
and alice opens it in her browser (headless Chromium), logged in to the hub. The page tries to read a file of
alice's through her server with her session, by `fetch` and through a window it opens.

The page needs no privilege: jupyterlab-server serves `<server>/lab/extensions/<name>/static/` from each labextensions
directory of the server's user, `~/.local/share/jupyter/labextensions` included, to anyone and without the
`sandbox` Content-Security-Policy that jupyter-server gives `/files/`; bob writes it from his own terminal.

- The control: the chart's default, one origin for the hub and every server (`/user/<name>/`). The page runs in
  the hub's origin and reads alice's file.
- The protection (README "Users and homes", "One origin"): `hub.config.JupyterHub.subdomain_host` in the stack's
  `jupyterhub.values`, which gives each server its own origin `<name>.<host>` (the chart then starts
  configurable-http-proxy with `--host-routing`). The same page, at bob's origin, reads nothing. The browser
  resolves `hub.test` and `*.hub.test` to the proxy's Service (Chromium's --host-resolver-rules), as a site's
  wildcard DNS name would.
"""

from __future__ import annotations

import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.e2e.browser import chromium, playwright
from tests.e2e.deployment import stack_output
from tests.e2e.hub_deployment import (
    USER_VALUES,
    chart_values,
    hub_images,
    password,
    running_hub,
    single_node_egress,
)

pytestmark = pytest.mark.e2e

SUBDOMAIN_HOST = "hub.test"
PAGE_DIR = "/home/bob/.local/share/jupyter/labextensions/page/static"  # bob's; served at lab/extensions/page/static/
# Bob's page: reads secret.txt through the server named after its `#`, with the session of whoever opens it.
PAGE = """<!doctype html><title>bob's page</title><button id="go">open</button><pre id="out"></pre>
<script>
const server = decodeURIComponent(location.hash.slice(1)), out = document.getElementById("out");
const say = (what) => { out.textContent += what + "\\n"; };
document.getElementById("go").onclick = async () => {
  try {
    const r = await fetch(server + "api/contents/secret.txt", {credentials: "include"});
    say("fetch: " + r.status + " " + await r.text());
  } catch (e) { say("fetch: refused: " + e); }
  const w = window.open(server + "api/contents/secret.txt");
  for (let i = 0; i < 100; i++) {
    await new Promise((ok) => setTimeout(ok, 100));
    try {
      if (w.document.body && w.document.body.innerText) { say("window: " + w.document.body.innerText); break; }
    } catch (e) { say("window: refused: " + e); break; }
  }
  say("done");
};
</script>
"""


@dataclass
class Hub:
    url: str  # where users log in (…/hub/login)
    password: str
    proxy_ip: str  # the proxy-public Service's cluster IP
    subdomains: bool

    def server(self, name: str) -> str:
        """The URL of NAME's server, as the hub gives it."""
        host = f"http://{name}.{SUBDOMAIN_HOST}" if self.subdomains else self.url
        return f"{host}/user/{name}/"


@pytest.fixture(scope="module")
def images(deployment):
    return hub_images(deployment)


@contextmanager
def hub(deployment, images, subdomains: bool) -> Iterator[Hub]:
    user_values = USER_VALUES
    if subdomains:  # as a site sets it: the stack's jupyterhub.values
        user_values = {"hub": {"config": {**USER_VALUES["hub"]["config"],
                                          "JupyterHub": {"subdomain_host": f"http://{SUBDOMAIN_HOST}"}}}}
    values = chart_values(deployment, images["notebook"], stack_output("slurmTokenUrl"),
                          egress=single_node_egress(deployment), user_values=user_values)
    with running_hub(deployment, images, values):
        ip = deployment.kube.get("service", "proxy-public")["spec"]["clusterIP"]  # served on port 80
        yield Hub(f"http://{SUBDOMAIN_HOST if subdomains else ip}", password(values), ip, subdomains)


def alice_opens_bobs_page(deployment, hub: Hub) -> tuple[str, str]:
    """Alice and bob log in (each in a browser context of their own) and get their servers; bob writes his page
    from his terminal, alice a secret into her home; alice opens bob's page and clicks its button.
    Returns (the secret, what the page wrote)."""
    secret = f"alice-secret-{secrets.token_hex(4)}"
    rules = f"MAP {SUBDOMAIN_HOST} {hub.proxy_ip}, MAP *.{SUBDOMAIN_HOST} {hub.proxy_ip}"
    with playwright() as p, chromium(p, f"--host-resolver-rules={rules}") as browser:
        pages = {}
        for name in ("bob", "alice"):
            page = pages[name] = browser.new_context().new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", hub.password)
            page.click("input[type=submit], button[type=submit]")
            # After login the hub starts the server and sends the browser on to it.
            page.wait_for_url(re.compile(re.escape(hub.server(name)) + "lab"), timeout=180_000)
        kube = deployment.kube
        kube.exec(kube.pod("jupyter-bob"), "bash", "-c", f"mkdir -p {PAGE_DIR} && cat > {PAGE_DIR}/page.html",
                  input=PAGE)
        kube.exec(kube.pod("jupyter-alice"), "bash", "-c", f"echo {secret} > /home/alice/secret.txt")
        page = pages["alice"]
        page.goto(hub.server("alice") + "api/contents/secret.txt")
        assert secret in page.content(), "alice should read her own file through her server"
        page.goto(hub.server("bob") + "lab/extensions/page/static/page.html#" + hub.server("alice"))
        page.click("#go")
        page.wait_for_function("document.getElementById('out').textContent.includes('done')", timeout=30_000)
        return secret, page.inner_text("#out")


def test_on_one_origin_a_page_bob_serves_reads_alices_files_with_her_session(deployment, images):
    """The control: the attack is real where every server shares the hub's origin."""
    with hub(deployment, images, subdomains=False) as h:
        secret, out = alice_opens_bobs_page(deployment, h)
    assert "fetch: 200" in out and out.count(secret) == 2, out


def test_with_a_subdomain_per_server_a_page_bob_serves_cannot_use_alices_session(deployment, images):
    with hub(deployment, images, subdomains=True) as h:
        secret, out = alice_opens_bobs_page(deployment, h)
    assert secret not in out, out
    assert "fetch: refused" in out and "window: refused" in out, out
