"""Browser test of `scratchnet serve`'s page: Debian's chromium, headless, driven by Playwright.

Trains a small model for a moment, serves it on a free port, draws a "7" on the canvas with the
mouse, and checks that the page shows top classes with probabilities and the 28×28 input the
model saw; saves docs/serve.png. Run from the repository root after `cargo build --release`:

    apt-get install -y chromium && pip install playwright    # never `playwright install`
    python3 tools/browser_test.py [--screenshot docs/serve.png]
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


def serve(checkpoint):
    proc = subprocess.Popen([BIN, "serve", "--checkpoint", checkpoint, "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    url = re.search(r"http://\S+", line)
    assert url, line
    return proc, url.group(0)


def main():
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    tmp = tempfile.mkdtemp()
    ckpt = os.path.join(tmp, "mlp.safetensors")
    subprocess.run([BIN, "train", "--model", "mlp", "--data", "fashion-mnist", "--limit", "3000",
                    "--epochs", "1", "--out", ckpt, "--quiet"], check=True, stdout=subprocess.DEVNULL)
    proc, url = serve(ckpt)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS,
                                        headless=True)
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


if __name__ == "__main__":
    main()
