#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

    python .ci/check_browser.py _build/html [--root REPO] [--screens DIR] [--chromium PATH]

The book is served from a local HTTP server on 127.0.0.1; every other request is blocked, so the check
sees the book as a student without internet does. Every page of ``_toc.yml`` fails on:

- **raw LaTeX**: a math element that MathJax did not typeset, or LaTeX commands (``\\frac``, ``$$``)
  left as text outside code; a displayed formula wider than the page (cut off at its edge);
- **a missing or broken image** (an ``<img>`` that did not load);
- **a request outside the book** (a CDN script, a web font): offline it fails, so the page would read
  differently without internet;
- **a console error or an uncaught exception** the page causes;
- **a line wider than its box**: a code cell, or a printed output line that would not fit unwrapped
  (the book's CSS wraps printed output, so the reader sees everything, but a wrapped table or number
  is hard to read: keep lines <= 79 characters).

A full-page screenshot of each page goes to ``--screens`` (default ``_build/ci/screens``), for humans.
Chromium is Debian's (``apt-get install chromium``), driven by Python's ``playwright`` through
``executable_path``: no browser is downloaded. Prints one line per page; exits 1 listing the problems.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import toc_files  # noqa: E402  (the same list of pages as the HTML check)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}  # a laptop screen: the article column is about 80 characters
MATHJAX_TIMEOUT_MS = 60_000
LOAD_TIMEOUT_MS = 120_000  # generous: a chapter page holds megabytes of figures, CI machines are loaded

# Runs in the page once it has loaded and MathJax has finished. Returns what the checks need.
INSPECT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const article = document.querySelector("article") || document.body;
  const out = {math: 0, raw_math: [], wide_math: [], raw_latex: [], images: 0, broken_images: [], wide: [],
               long_output: []};
  for (const el of article.querySelectorAll(".math")) {
    out.math += 1;
    if (!el.querySelector("mjx-container") && !el.closest("mjx-container")) {
      out.raw_math.push(el.textContent.trim().slice(0, 80));
    } else if (el.tagName === "DIV") {  // a displayed formula: MathJax's container scrolls when too wide
      const c = el.querySelector("mjx-container") || el;
      const over = Math.max(c.scrollWidth - c.clientWidth, el.scrollWidth - el.clientWidth);
      if (over > 1) out.wide_math.push({over: over, text: el.textContent.trim().slice(0, 60)});
    }
  }
  // LaTeX commands left as plain text (math that was never recognised as math), outside code and math.
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const latex = /(\$\$|\\(frac|sum|int|partial|mathrm|mathbf|alpha|beta|sigma|nabla|cdot|left|right|begin)\b)/;
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const p = node.parentElement;
    if (!p || p.closest("pre, code, script, style, mjx-container, .math, .highlight")) continue;
    if (latex.test(node.textContent)) out.raw_latex.push(node.textContent.trim().slice(0, 80));
  }
  for (const img of article.querySelectorAll("img")) {
    out.images += 1;
    if (!img.complete || img.naturalWidth === 0) {
      out.broken_images.push((img.getAttribute("src") || "").slice(0, 80));
    }
  }
  // Code and output boxes. Code is never wrapped: a code line wider than its box is cut off (a
  // failure). Printed output wraps at the box's edge (_static/course.css), so nothing printed is ever
  // hidden; a printed line that would not fit unwrapped is reported as a note (out.long_output), not
  // a failure: write prints within 79 characters, and let the wrap handle what cannot be (the source
  // of package functions shown with inspect.getsource).
  for (const pre of article.querySelectorAll("div.cell pre, div.highlight pre")) {
    const output = pre.closest(".cell_output");
    const over = pre.scrollWidth - pre.clientWidth;
    const saved = pre.style.whiteSpace;
    if (output) pre.style.whiteSpace = "pre";
    const unwrapped = pre.scrollWidth - pre.clientWidth;
    pre.style.whiteSpace = saved;
    if (over > 1 || (output && unwrapped > 1)) {
      const lines = pre.textContent.split("\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      const entry = {kind: output ? "output" : "code", over: Math.max(over, unwrapped),
                     width: pre.clientWidth, chars: longest.length, line: longest.slice(0, 60)};
      (over > 1 ? out.wide : out.long_output).push(entry);
    }
  }
  return out;
}
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on stderr
        pass


def serve(directory: Path):
    """A threaded HTTP server for ``directory`` on 127.0.0.1 and a free port; returns (server, base URL)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check_page(context, base: str, path: str, screen: Path) -> list[str]:
    page = context.new_page()
    problems: list[str] = []
    blocked: list[str] = []
    errors: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
            r.continue_()
        else:
            blocked.append(url)
            r.abort("blockedbyclient")

    page.route("**/*", route)
    in_flight: set[str] = set()
    page.on("request", lambda r: in_flight.add(r.url) if not r.url.startswith("data:") else None)
    page.on("requestfinished", lambda r: in_flight.discard(r.url))
    page.on("requestfailed", lambda r: in_flight.discard(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught {e}"))
    missing: list[str] = []
    page.on("response", lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    try:
        response = page.goto(base + path + ".html", wait_until="load")
        if response is None or response.status != 200:
            return [f"the page did not load (HTTP {response.status if response else '?'})"]
        # wait until what scripts load later (MathJax's fonts and extensions) has arrived: no request
        # in flight for half a second (playwright's "networkidle" never came on pages full of data: URIs)
        deadline, quiet_since = time.monotonic() + LOAD_TIMEOUT_MS / 1000, None
        while time.monotonic() < deadline:
            if in_flight:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 0.5:
                break
            page.wait_for_timeout(100)
        else:
            problems.append(f"the page still loads files after {LOAD_TIMEOUT_MS // 1000} s: "
                            f"{sorted(in_flight)[:3]}")
        page.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.promise",
                               timeout=MATHJAX_TIMEOUT_MS)
        seen = page.evaluate(INSPECT)
        screen.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screen), full_page=True, type="jpeg", quality=70)
    finally:
        page.close()

    if seen["raw_math"]:
        problems.append(f"{len(seen['raw_math'])} of {seen['math']} formulas not typeset, e.g. "
                        f"{seen['raw_math'][0]!r} (is MathJax served with the book?)")
    for w in seen["wide_math"]:
        problems.append(f"a displayed formula is {w['over']} px wider than the page (cut off): {w['text']!r}")
    for text in seen["raw_latex"][:3]:
        problems.append(f"LaTeX shown as text: {text!r}")
    for src in seen["broken_images"]:
        problems.append(f"image did not load: {src!r}")
    for url in sorted(set(blocked)):
        problems.append(f"requests something outside the book (fails offline): {url[:120]}")
    for text in sorted(set(missing)):
        problems.append(f"a file of the book is missing: HTTP {text[:140]}")
    # a blocked or missing file also logs "Failed to load resource": that is reported above already
    for text in errors:
        if (blocked or missing) and text.startswith("Failed to load resource"):
            continue
        problems.append(f"console error: {text[:200]}")
    for w in seen["wide"]:
        problems.append(f"{w['kind']} line of {w['chars']} characters is {w['over']} px wider than "
                        f"its {w['width']} px box: {w['line']!r}")
    for w in seen["long_output"]:  # wrapped on the page (nothing hidden): a note, not a failure
        print(f"        note: a printed line of {w['chars']} characters wraps: {w['line']!r}")
    return problems


def check(html_dir: Path, root: Path, screens: Path, chromium: str) -> int:
    from playwright.sync_api import sync_playwright

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = toc_files(toc)
    if screens.exists():
        shutil.rmtree(screens)
    server, base = serve(html_dir)
    print(f"Opening {len(pages)} pages of {html_dir} in {chromium}, served at {base}, other network blocked")
    all_problems: list[str] = []
    try:
        with sync_playwright() as p:
            # launch() gives Chromium a fresh, temporary profile (user data dir) every time
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            print(f"Chromium {browser.version}")
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            for path in pages:
                if not (html_dir / f"{path}.html").is_file():
                    mine = ["no HTML page (was it built?)"]
                else:
                    mine = check_page(context, base, path, screens / f"{path}.jpg")
                print(f"{'ok  ' if not mine else 'FAIL'}  {path:40s} {len(mine)} problem(s)")
                for problem in mine:
                    print(f"        {problem}")
                all_problems += [f"{path}: {problem}" for problem in mine]
            browser.close()
    finally:
        server.shutdown()
    print(f"Screenshots: {screens}")
    if all_problems:
        print(f"\n{len(all_problems)} problem(s) seen in the browser", file=sys.stderr)
        return 1
    print("\nEvery page renders offline: math typeset, images loaded, no console error, lines fit.")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", type=Path, help="the built HTML book, e.g. _build/html")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the repository root, with _toc.yml (default: this script's repository)")
    parser.add_argument("--toc", type=Path, default=None, help="another _toc.yml (a mini book's)")
    parser.add_argument("--screens", type=Path, default=None,
                        help="where the screenshots go (default: _build/ci/screens under the root)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (default: Debian's, from PATH)")
    args = parser.parse_args(argv)
    if not args.html_dir.is_dir():
        print(f"{args.html_dir} is not a directory: build the book first", file=sys.stderr)
        return 1
    root = args.root.resolve()
    if args.toc is not None:  # a mini book: read its table of contents instead
        root = args.toc.resolve().parent
    screens = args.screens or (args.root.resolve() / "_build" / "ci" / "screens")
    return check(args.html_dir.resolve(), root, screens.resolve(), args.chromium)


if __name__ == "__main__":
    sys.exit(main())
