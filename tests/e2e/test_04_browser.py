"""Scenario 4: a real browser (headless Chromium through Playwright) on the slurm-jupyter pod's JupyterLab, reached
the way the stack output jupyterLabAccess says (port-forward of its Service, the token from
`scripts/pulumi stack output jupyterToken --show-secrets`).

jupyterlab-slurm 4.1 ("Slurm Dashboard", formerly the Slurm Queue Manager) lists, holds, releases and cancels jobs
but has no job-submission form, so the job is submitted from JupyterLab's own Terminal (held, so the queue shows it
for certain), released with the dashboard's Resume button, and seen finished in the dashboard's Job History (sacct).
Screenshots go to a temporary directory named in the test output.
"""

import re
import secrets
import time

import pytest
import requests

from components import jupyter
from tests.e2e.browser import chromium, playwright
from tests.e2e.deployment import stack_output
from tests.images.slurm_containers import wait_until

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def lab(deployment):
    """(base URL through a port-forward of the JupyterLab Service, token)."""
    d = deployment
    token = stack_output("jupyterToken", secret=True)
    assert token == d.jupyter_token(), "the stack output jupyterToken is not the token the pod got"
    with d.kube.port_forward(f"service/{d.service_of(d.jupyter)}", jupyter.PORT) as local_port:
        yield f"http://127.0.0.1:{local_port}", token


@pytest.fixture(scope="module")
def browser():
    with playwright() as p, chromium(p) as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("jupyterlab-screenshots")
    print(f"\nscreenshots: {d}")
    return d


def test_without_the_token_jupyterlab_refuses_access(browser, lab, shots):
    url, token = lab
    for path in ("/api/contents", "/api/terminals", "/jupyterlab_slurm/squeue"):
        assert requests.get(url + path, timeout=10).status_code == 403, path
        wrong = {"Authorization": f"token {secrets.token_hex(24)}"}
        assert requests.get(url + path, headers=wrong, timeout=10).status_code == 403, path
    page = browser.new_page()
    try:
        page.goto(url + "/lab")
        assert "/login" in page.url, f"/lab without a token should go to the login page, got {page.url}"
        field = page.locator("input[type=password]")
        field.wait_for(timeout=30_000)
        field.fill(secrets.token_hex(24))
        page.locator("button[type=submit], input[type=submit]").first.click()
        page.wait_for_load_state()
        page.screenshot(path=str(shots / "0-wrong-token.png"))
        assert "/login" in page.url and page.locator(".jp-LabShell").count() == 0, page.url
        assert re.search(r"[Ii]nvalid", page.content()), "the login page should say the credentials are invalid"
    finally:
        page.close()


def test_a_job_from_jupyterlab_is_listed_in_the_slurm_dashboard_and_then_finished(browser, lab, deployment, shots):
    from playwright.sync_api import expect

    url, token = lab
    d = deployment
    user = d.lab_user
    name = f"ui-{secrets.token_hex(3)}"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{url}/lab?reset&token={token}")
        page.locator(".jp-LauncherCard", has_text="Terminal").click()
        page.locator(".jp-Terminal .xterm-helper-textarea").wait_for()

        def terminal_open():  # the server side of the terminal exists (its websocket is what the page types into)
            r = requests.get(f"{url}/api/terminals", headers={"Authorization": f"token {token}"}, timeout=10)
            return r.status_code == 200 and r.json()
        wait_until(terminal_open, 30, "JupyterLab's terminal to start")
        page.locator(".jp-Terminal").click()

        def in_queue():
            return d.kube.exec(d.slurm, "squeue", "-h", "--name", name, "-o", "%i %T %u %r").stdout.strip()
        # Typed until the job shows up: the first keystrokes can arrive before the terminal's shell is ready.
        for _ in range(3):
            page.keyboard.type(f"sbatch --hold --job-name={name} --output={name}-%j.out "
                               f"--wrap 'echo {name} on $(hostname) as $(id -un)'\n")
            try:
                queued = wait_until(in_queue, 15, f"job {name} typed into JupyterLab's terminal to be queued")
                break
            except AssertionError:
                continue
        else:
            page.screenshot(path=str(shots / "1-terminal.png"))
            pytest.fail(f"the sbatch typed into JupyterLab's terminal never queued job {name}; see {shots}")
        job_id, state, owner, reason = queued.split()
        assert (state, owner, reason) == ("PENDING", user, "JobHeldUser"), queued

        page.keyboard.press("Control+Shift+L")  # a new Launcher
        page.locator(".jp-LauncherCard", has_text="Slurm Dashboard").last.click()
        row = page.locator(".ag-center-cols-container .ag-row", has_text=name)
        expect(row).to_contain_text("PENDING")
        expect(row).to_contain_text(user)
        expect(row).to_contain_text(job_id)
        page.screenshot(path=str(shots / "2-dashboard-held.png"))

        row.locator("input[type=checkbox]").check()
        page.locator("button", has_text="Resume").first.click()
        d.wait_job(job_id, "COMPLETED", timeout=60)

        page.get_by_role("tab", name="Job History").click()
        # (The Jobs tab's table stays in the page, hidden: look at visible rows only.)
        finished = page.locator(".ag-center-cols-container .ag-row:visible", has_text=name).filter(has_text="COMPLETED")

        def finished_in_history():
            page.get_by_role("button", name="Refresh job history").click()
            time.sleep(0.5)  # let the table re-render before looking (the condition is re-checked anyway)
            return finished.count() == 1
        wait_until(finished_in_history, 60, f"job {name} COMPLETED in the dashboard's Job History",
                   lambda: page.content()[-2000:])
        expect(page.locator("text=Job History for")).to_contain_text(user)
        page.screenshot(path=str(shots / "3-job-history-completed.png"))

        # The output, written by the Slurm node into the terminal's directory (the user's home), opened from
        # JupyterLab's file browser.
        out_file = f"{name}-{job_id}.out"
        item = page.locator(".jp-DirListing-item", has_text=out_file)

        def listed():
            page.locator(".jp-FileBrowser jp-button[title^='Refresh'], .jp-FileBrowser button[title^='Refresh']"
                         ).first.click()
            return item.count() == 1
        wait_until(listed, 30, f"{out_file} in JupyterLab's file browser", lambda: page.content()[-2000:])
        item.dblclick()
        expect(page.locator(".jp-FileEditor .cm-content")).to_contain_text(f"{name} on {d.slurm.hostname} as {user}")
        page.screenshot(path=str(shots / "4-output-in-file-browser.png"))
    finally:
        page.close()
