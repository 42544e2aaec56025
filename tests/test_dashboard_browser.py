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
    from selenium.webdriver.common.by import By

    tasks = digit_tasks()
    server = Served(tmp_path / "served")
    try:
        with httpx.Client(timeout=60) as client:
            for task in tasks:
                for _, x, y in batches(task):
                    r = client.post(
                        f"{server.url}/v1/observe", json={"x": x.tolist(), "y": y.tolist()}
                    )
                    assert r.status_code == 200, r.text
                r = client.post(
                    f"{server.url}/v1/experiences/end",
                    json={"x_test": task["x_test"].tolist(), "y_test": task["y_test"].tolist()},
                )
                assert r.status_code == 200, r.text

            def finished():
                s = client.get(f"{server.url}/v1/run").json()
                return s if s["queued_examples"] == 0 and len(s["matrix"]) == 2 else None

            state = wait_until(finished, what="both tasks learned")
        driver = chromium()
        try:
            driver.get(server.url + "/")
            wait_until(
                lambda: len(driver.find_elements(By.CSS_SELECTOR, "#matrix-table td")) == 4,
                what="the matrix to render",
            )
            for cell in driver.find_elements(By.CSS_SELECTOR, "#matrix-table td"):
                i, j = int(cell.get_attribute("data-i")), int(cell.get_attribute("data-j"))
                want = state["matrix"][i][j]
                assert cell.text == ("-" if want is None else f"{want:.3f}"), (i, j)
            curves = driver.find_elements(By.CSS_SELECTOR, "#curves polyline.curve")
            assert len(curves) == 2
            for curve in curves:
                j = int(curve.get_attribute("data-experience"))
                column = [row[j] for row in state["matrix"] if row[j] is not None]
                drawn = [float(v) for v in curve.get_attribute("data-values").split(",")]
                assert drawn == column
                assert len(curve.get_attribute("points").split()) == len(column)
            bars = driver.find_elements(By.CSS_SELECTOR, "#memory rect.memory-bar")
            counts = [int(b.get_attribute("data-count")) for b in bars]
            assert counts == state["memory"]["by_class"] and sum(counts) == 50
            assert driver.find_element(By.ID, "learned").text == "400"
            assert driver.find_element(By.ID, "status").text == "learning"
            online = driver.find_element(By.ID, "online").text
            assert online == f"{state['online_accuracy']:.3f}" and 0.4 < float(online) < 1
            average = driver.find_element(By.ID, "average").text
            assert average == f"{state['summary']['average_accuracy']:.3f}"
            assert driver.find_element(By.ID, "throughput-line").get_attribute("points")
            assert driver.find_element(By.ID, "error").text == ""
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
        finally:
            driver.quit()
    finally:
        assert server.stop() == 143
