"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``; ``make test`` installs them) against a running ``lifelong serve``,
checking that the curves, the matrix and the memory bars show the server's numbers, and that
the API docs render offline."""

from __future__ import annotations

import shutil

import httpx
import pytest

from tests.serve_helpers import Served, batches, digit_tasks, wait_until

pytestmark = pytest.mark.slow


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, (
        "the dashboard test needs Chromium and its driver: apt-get install chromium "
        "chromium-driver (make test does this where it can)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_dashboard_draws_the_servers_numbers(tmp_path):
    """The page against a served run: empty, it says how to start; learned, every chart and
    number shows /v1/run's values, drawn (canvas ink, legends); /docs renders offline."""
    tasks = digit_tasks()
    server = Served(tmp_path / "served")
    try:
        driver = chromium()
        try:
            _check_the_dashboard(server, driver, tasks)
        finally:
            driver.quit()
    finally:
        assert server.stop() == 143


def _check_the_dashboard(server, driver, tasks) -> None:
    """Everything the test checks once the server and the browser are up."""
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/")  # empty: a hint says how to start
    wait_until(lambda: driver.find_element(By.ID, "empty").is_displayed(), what="the hint")
    assert "/v1/observe" in driver.find_element(By.ID, "empty").text
    with httpx.Client(timeout=60) as client:
        for task in tasks:
            for _, x, y in batches(task):
                r = client.post(f"{server.url}/v1/observe", json={"x": x.tolist(), "y": y.tolist()})
                assert r.status_code == 200, r.text
            r = client.post(
                f"{server.url}/v1/experiences/end",
                json={"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()},
            )
            assert r.status_code == 200, r.text
        state = client.get(f"{server.url}/v1/run", params={"wait": 300}).json()
        assert state["caught_up"] and len(state["matrix"]) == 2

    def drawn():  # the page's last poll saw everything learned and both experiences evaluated
        run = driver.execute_script("return window.dashboard.run")
        if not run or run["learned"] != 400 or not run["summary"]:
            return None
        return run if run["matrix"] == state["matrix"] else None

    seen = wait_until(drawn, what="the dashboard to show the learned run")
    data = driver.execute_script("return window.dashboard.data")
    for i, row in enumerate(state["matrix"]):
        for j, want in enumerate(row):
            cell = driver.find_element(By.CSS_SELECTOR, f"td[data-i='{i}'][data-j='{j}']")
            assert cell.text == ("-" if want is None else f"{want:.3f}"), (i, j)
            assert data["curves"][1 + j][i] == want  # each experience's curve
    assert data["curves"][0] == [0, 1]
    assert data["memory"][1] == state["memory"]["by_class"] and sum(data["memory"][1]) == 50
    assert data["throughput"][1][-1] == 400  # examples learned, up to now
    assert data["online-chart"][1][-1] == seen["online_accuracy"]
    assert data["loss-chart"][1][-1] == seen["loss"] and 0 < seen["loss"] < 10
    assert driver.find_element(By.ID, "learned").text == "400"
    assert driver.find_element(By.ID, "status").text == "caught up"
    assert not driver.find_element(By.ID, "empty").is_displayed()
    online = driver.find_element(By.ID, "online").text
    assert online == f"{seen['online_accuracy']:.3f}" and 0.4 < float(online) < 1
    average = driver.find_element(By.ID, "average").text
    assert average == f"{state['summary']['average_accuracy']:.3f}"
    worst = driver.find_element(By.ID, "min-acc").text
    assert worst == f"{state['summary']['min_acc']:.3f}" and 0 < float(worst) <= 1
    # every chart drew on its canvas: axes, labels, legend and the data's pixels
    for chart in ("curves", "online-chart", "loss-chart", "throughput", "memory"):
        inked = driver.execute_script(
            "const c = document.querySelector(arguments[0] + ' canvas');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;"
            "return n;",
            f"#{chart}",
        )
        assert inked > 500, chart
        legend = driver.find_element(By.CSS_SELECTOR, f"#{chart} .u-legend").text
        assert legend, chart
    assert driver.find_element(By.ID, "error").text == ""
    # the memory's picture: a PNG of the stored examples, shown on the page
    wait_until(
        lambda: driver.execute_script(
            "const i = document.getElementById('memory-picture');"
            "return i.complete && i.naturalWidth > 300 && i.naturalHeight > 100;"
        ),
        what="the memory's picture",
    )
    # the API docs render from the package's own files (no CDN: this browser is
    # offline but for the server)
    driver.get(server.url + "/docs")
    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path"),
        what="Swagger UI to render",
    )
    paths = {
        e.get_attribute("data-path")
        for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert {"/v1/observe", "/v1/predict", "/healthz"} <= paths, paths
