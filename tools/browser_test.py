"""Browser tests of scratchnet's pages: Debian's chromium, headless, driven by Playwright.

1. `serve`: trains a small model for a moment, serves it on a free port, draws a "7" on the
   canvas with the mouse, and checks that the page shows top classes with probabilities and the
   28×28 input the model saw.
2. `train --dashboard`: opens the dashboard during a short run, sees the loss curve grow (more
   points, more coloured pixels on its canvas), the layer tables and predictions filled, then
   "finished" when the run ends (--dashboard-keep; the process is killed afterwards).
3. `playground`: opens the page, presses Train, and sees the decision boundary change (the
   probabilities and the pixels of its canvas) as the epochs go by.

Run from the repository root after `cargo build --release`:

    apt-get install -y chromium && pip install playwright    # never `playwright install`
    python3 tools/browser_test.py [--screenshots docs]    # docs/{serve,dashboard,playground}.png
"""
import os
import re
import subprocess
import sys
import tempfile

from playwright.sync_api import sync_playwright

BIN = "target/release/scratchnet"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def start(args):
    """Runs scratchnet ARGS; returns the process and the first URL it prints."""
    proc = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        url = re.search(r"http://\S+", line)
        if url:
            return proc, url.group(0)
    raise AssertionError(f"no URL printed by {args}")


def launch(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)


# Pixels of a canvas that are not white or transparent.
INKED = """id => {
    const c = document.getElementById(id);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i + 3] > 0 && (d[i] < 200 || d[i + 2] < 200); return n;
}"""


def dashboard(p, shots):
    # Long enough (8 epochs, ~5 s on a quiet laptop) for the page to open while it trains.
    tmp = tempfile.mkdtemp()
    proc, url = start(["train", "--model", "mlp", "--data", "fashion-mnist", "--limit", "15000",
                       "--epochs", "8", "--stats-every", "20", "--out", os.path.join(tmp, "m.safetensors"),
                       "--quiet", "--dashboard", "0", "--dashboard-keep"])
    try:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.goto(url)
        page.wait_for_function("window.dashboard && window.dashboard.curve.length > 0", timeout=60000)
        n1, status1 = page.evaluate("[window.dashboard.curve.length, window.dashboard.status]")
        ink1 = page.evaluate(INKED, "loss")
        assert status1 == "training", f"the run ended before the page saw it grow ({status1})"
        page.wait_for_function(f"window.dashboard.curve.length > {n1} + 5", timeout=60000)
        page.wait_for_timeout(600)  # the next redraw
        n2, ink2 = page.evaluate("window.dashboard.curve.length"), page.evaluate(INKED, "loss")
        assert ink2 > ink1, (ink1, ink2)
        layers, params = page.evaluate("[window.dashboard.layers.activations.length, window.dashboard.layers.params.length]")
        assert layers > 0 and page.locator("#layers tr.layer").count() == layers
        assert params > 0 and page.locator("#params tr.param").count() == params
        page.wait_for_function("document.getElementById('status').textContent.startsWith('finished')",
                               timeout=300000)
        preds = page.locator("#samples .predicted").all_inner_texts()
        assert len(preds) == 8 and all(t.startswith("→ ") for t in preds), preds
        if shots:
            page.screenshot(path=os.path.join(shots, "dashboard.png"), full_page=True)
        browser.close()
        print(f"ok: dashboard curve grew from {n1} to {n2} points while training, then 'finished'")
    finally:
        proc.kill()


def playground(p, shots):
    proc, url = start(["playground", "--port", "0"])
    try:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1240, "height": 500})
        page.goto(url)
        page.wait_for_function("window.playground && window.playground.epoch === 0")
        p0 = page.evaluate("window.playground.p")
        shot0 = page.locator("#boundary").screenshot()
        page.click("#play")
        page.wait_for_function("window.playground.epoch >= 30", timeout=60000)
        page.click("#play")  # pause
        page.wait_for_timeout(300)
        p1 = page.evaluate("window.playground.p")
        changed = sum(abs(a - b) > 0.05 for a, b in zip(p0, p1))
        assert changed > 100, changed
        assert page.locator("#boundary").screenshot() != shot0
        assert page.locator("#error").inner_text() == "", page.locator("#error").inner_text()
        figures = page.locator("#figures").inner_text()
        assert "test loss" in figures, figures
        if shots:
            page.screenshot(path=os.path.join(shots, "playground.png"))
        browser.close()
        print(f"ok: playground boundary changed at {changed} of {len(p0)} grid points ({figures})")
    finally:
        proc.kill()


def main():
    shots = sys.argv[sys.argv.index("--screenshots") + 1] if "--screenshots" in sys.argv else None
    shot = os.path.join(shots, "serve.png") if shots else None
    tmp = tempfile.mkdtemp()
    ckpt = os.path.join(tmp, "mlp.safetensors")
    subprocess.run([BIN, "train", "--model", "mlp", "--data", "fashion-mnist", "--limit", "3000",
                    "--epochs", "1", "--out", ckpt, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    proc, url = start(["serve", "--checkpoint", ckpt, "--port", "0"])
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 900, "height": 480})
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.includes('parameters')")
            box = page.locator("#pad").bounding_box()
            x0, y0 = box["x"], box["y"]
            # A "7": a bar across the top, then a stroke down to the bottom left.
            page.mouse.move(x0 + 70, y0 + 60)
            page.mouse.down()
            for x, y in [(140, 60), (210, 60), (180, 130), (150, 200), (130, 240)]:
                page.mouse.move(x0 + x, y0 + y, steps=8)
            page.mouse.up()
            page.wait_for_selector("tr.prediction")
            page.wait_for_timeout(300)  # the last request after the stroke ended
            rows = page.locator("tr.prediction").all()
            assert len(rows) == 5, len(rows)
            classes = [r.locator(".class").inner_text() for r in rows]
            probs = [float(r.locator(".probability").inner_text().rstrip("%")) for r in rows]
            assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 100, probs
            assert sum(probs) <= 100.5, probs
            lit = page.evaluate("""() => {
                const c = document.getElementById('seen');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 64; return [c.width, c.height, n];
            }""")
            assert lit[:2] == [28, 28] and 20 < lit[2] < 400, lit
            assert page.locator("#status").inner_text() == "", page.locator("#status").inner_text()
            if shot:
                page.screenshot(path=shot)
            # Clear empties the table.
            page.click("#clear")
            assert page.locator("tr.prediction").count() == 0
            browser.close()
        print(f"ok: drew a 7, the page shows {list(zip(classes, probs))[:3]}, the model saw {lit[2]} lit pixels")
    finally:
        proc.kill()
    with sync_playwright() as p:
        dashboard(p, shots)
        playground(p, shots)


if __name__ == "__main__":
    main()
