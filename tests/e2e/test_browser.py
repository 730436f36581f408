"""The Dagster UI in a real browser: headless Chromium (Debian's, at /usr/bin/chromium) driven by
Playwright against ``dagster-webserver`` on deploy/dagster.yaml, on a lake where every domain's
assets were materialised in-process first (as tests/test_contract.py does, on a short window).

Checks the asset graph (every domain's group, every asset of each group) and one or two asset
pages per domain: a markdown table's cell and, for the plots, an ``<img>`` with a ``data:`` PNG
that the browser decoded. Screenshots of every page go to a temporary folder (printed).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import dagster as dg
import pytest

from finance_dag.core import calendar
from tests.e2e.servers import WINDOW, deployment, make_home
from tests.support import (
    make_defs,
    materialise_etf,
    materialise_market_data,
    materialise_risk,
    materialise_strategies,
    run_job,
)

pytestmark = [pytest.mark.cli, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY = date(2024, 11, 29)
# 30 sessions of minute bars: the strategies' walk-forward (train 20, test 5) needs them.
BROWSER_WINDOW = {**WINDOW, "START_DATE": calendar.sessions_before(DAY, 29)[0].isoformat()}
# asset -> (a markdown table's metadata key or None, a plot's metadata key or None)
PAGES = {
    "coverage_report": ("report", "heatmap"),
    "squeeze_scores": ("top_candidates", None),
    "factor_ic_report": (None, "rolling_ic"),
    "target_portfolio": ("preview", None),
    "portfolio_backtest": ("metrics", "equity_curve"),
    "risk_attribution": ("target_portfolio_factors", "target_portfolio_contribution_chart"),
    "strategy_report": ("preview", "rolling_sharpe"),
}
TIMEOUT_MS = 30_000

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install -y chromium) for the headless-browser checks",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip)")


def first_cell(markdown: str) -> str:
    """The first body cell of a markdown table (as ``core.reports.markdown_table`` writes it)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(rows) >= 3, f"not a markdown table with rows: {markdown[:200]}"
    return rows[2].split("|")[1].strip()


def materialise_every_domain(root) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Every domain on the lake ``root/lake``, recorded in the instance at ``root/dagster_home``
    (the webserver's); returns the assets of each group and, by asset, the first cell of the
    markdown table ``PAGES`` names."""
    instance = make_home(root)
    try:
        defs = make_defs(str(root / "lake"), env=BROWSER_WINDOW)
        materialise_market_data(defs, instance, calendar.sessions_before(DAY, 29)[0], DAY)
        materialise_strategies(defs, instance)
        run_job(defs, instance, "lending_job", {"dagster/partition": DAY.isoformat()})
        materialise_etf(defs, instance, DAY)
        materialise_risk(defs, instance, DAY)
        groups: dict[str, set[str]] = {}
        for spec in defs.resolve_all_asset_specs():
            groups.setdefault(spec.group_name, set()).add(spec.key.to_user_string())
        cells = {}
        for asset, (table, _) in PAGES.items():
            if table:
                event = instance.get_latest_materialization_event(dg.AssetKey(asset))
                cells[asset] = first_cell(event.asset_materialization.metadata[table].value)
        return groups, cells
    finally:
        instance.dispose()


@contextmanager
def chromium_page() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # "Join the Dagster community" opens a second after the first page of a fresh
            # instance (on 127.0.0.1); dismiss it whenever it covers what a check waits for.
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
            yield page
        finally:
            browser.close()


def open_page(page, url: str, community_modal: bool = False) -> None:
    """Go to ``url``; with ``community_modal`` (the instance's first page), wait a few seconds
    for "Join the Dagster community" and click "Skip" (the instance then never shows it again)."""
    page.goto(url, wait_until="domcontentloaded")
    if not community_modal:
        return
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=5_000)
    except sync_api.TimeoutError:
        return
    skip.click()
    sync_api.expect(skip).to_be_hidden()


DRAWN = """names => {
    const labels = [...document.querySelectorAll("svg foreignObject")].map(e => e.textContent.trim());
    return names.every(n => labels.some(t => t.startsWith(n) && !/[a-z_]/.test(t.charAt(n.length))));
}"""


def graph_nodes(page, expected: set[str]) -> None:
    """Wait until the asset graph draws a node labelled with each of ``expected`` (a group's
    node adds its counts to the name)."""
    try:
        page.wait_for_function(DRAWN, arg=sorted(expected))
    except sync_api.TimeoutError:
        drawn = page.locator("svg foreignObject").all_text_contents()
        raise AssertionError(f"graph nodes {sorted(expected)} not all drawn; drawn: {drawn}") from None


def screenshot(page, path) -> None:
    """``page`` once its finite animations (a dialog opening, a graph zooming) have ended."""
    page.evaluate(
        """() => Promise.all(document.getAnimations()
            .filter(a => a.effect && a.effect.getComputedTiming().iterations !== Infinity)
            .map(a => a.finished.catch(() => null)))"""
    )
    page.screenshot(path=path)


def test_the_ui_shows_the_asset_graph_and_each_domains_metadata(tmp_path):
    """One lake, one webserver and one browser for every page (one test, so that pytest-xdist
    never builds them twice); every page is checked before the test fails, naming each failure."""
    groups, cells = materialise_every_domain(tmp_path)
    assert set(groups) == {"market_data", "lending", "etf", "risk", "strategies"}
    shots = tmp_path / "screenshots"
    shots.mkdir()
    failures: list[str] = []

    def check(name: str, page, steps) -> None:
        try:
            steps()
        except (AssertionError, sync_api.Error) as error:
            head = str(error).split("Aria snapshot:")[0].strip()  # Playwright appends the page's tree
            failures.append(f"{name}: {head}")
            page.screenshot(path=shots / f"FAILED_{name}.png")

    with deployment(tmp_path, BROWSER_WINDOW, daemon=False) as dagster, chromium_page() as page:
        url = dagster.url

        def global_graph():
            open_page(page, f"{url}/asset-groups", community_modal=True)
            graph_nodes(page, set(groups))
            screenshot(page, shots / "asset_graph.png")

        check("asset_graph", page, global_graph)
        for group, assets in sorted(groups.items()):

            def group_graph(group=group, assets=assets):
                open_page(page, f"{url}/locations/finance_dag/asset-groups/{group}/lineage")
                graph_nodes(page, assets)
                screenshot(page, shots / f"group_{group}.png")

            check(f"group_{group}", page, group_graph)
        for asset in PAGES:
            check(asset, page, lambda asset=asset: asset_page(page, url, asset, cells.get(asset), shots))
    print(f"screenshots: {shots}")
    assert not failures, "\n".join([f"screenshots: {shots}", *failures])


def asset_page(page, url: str, asset: str, cell: str | None, shots) -> None:
    """The asset's page shows its table's ``cell`` and its plot as a decoded PNG."""
    table, plot = PAGES[asset]
    open_page(page, f"{url}/assets/{asset}")
    sync_api.expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    if table:
        with metadata_value(page, table) as shown:
            sync_api.expect(shown.locator("td").get_by_text(cell, exact=True).first).to_be_visible()
            screenshot(page, shots / f"{asset}_{table}.png")
    if plot:
        with metadata_value(page, plot) as shown:
            image = shown.locator('img[src^="data:image/png;base64,"]')
            sync_api.expect(image).to_have_count(1)
            sync_api.expect(image).to_be_visible()
            size = image.evaluate("img => img.complete ? [img.naturalWidth, img.naturalHeight] : [0, 0]")
            assert min(size) > 0, f"{asset}.{plot}: the PNG did not decode ({size})"
            screenshot(page, shots / f"{asset}_{plot}.png")


class metadata_value:
    """The rendered value of metadata entry ``key`` of the latest materialisation (the asset
    page's Metadata table): its row when shown inline, else the dialog "[Show Markdown]" opens
    (markdown of 1,000 characters or more), closed again on exit."""

    def __init__(self, page, key: str) -> None:
        self.page, self.key = page, key
        self.dialog = None

    def __enter__(self):
        row = self.page.locator(f"xpath=//tr[td[1][normalize-space()='{self.key}']]").first
        sync_api.expect(row).to_be_visible()
        more = row.get_by_text("[Show Markdown]", exact=True)
        if more.count() == 0:
            return row
        more.click()
        self.dialog = self.page.get_by_role("dialog").last
        sync_api.expect(self.dialog).to_be_visible()
        return self.dialog

    def __exit__(self, *exc) -> None:
        if self.dialog is not None and exc[0] is None:
            self.page.keyboard.press("Escape")
            sync_api.expect(self.dialog).to_be_hidden()
