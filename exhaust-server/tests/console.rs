//! The console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, started here on a free loopback port), against the
//! server started with its in-process worker on the bundled sample, on
//! SQLite and PostgreSQL. It chooses a channel, submits a request from the
//! page, watches the list update itself to SUCCESS (measuring layout
//! shift), downloads the file and compares it with the report `exhaust
//! report` writes for the batch, opens the batch page and checks every
//! picture's table (and what its SVG draws, and its CSV download) against
//! the numbers counted from that CSV, walks each page by keyboard, runs
//! axe-core in each page at 360 and 1440 px, and keeps screenshots of each
//! page at both widths (printed at the end, under the target folder).
//!
//! The browser, its driver and axe-core are required: a machine without
//! them fails here, naming what to install (`scripts/services` installs
//! all three). Without a browser: the token sessions, the channel
//! isolation and the CSRF checks, over plain HTTP.

#[macro_use]
mod support;

use exhaust_core::report::{ReportOptions, build_report};
use exhaust_core::store::RequestStore;
use exhaust_server::auth::AuthMode;
use exhaust_sources::{Snapshot, SnapshotOptions};
use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use support::*;

// ---------------------------------------------------------------------------
// The browser.

/// The first of `names` found on the PATH (or an absolute path that exists).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        let p = Path::new(name);
        if p.is_absolute() && p.is_file() {
            return Some(p.to_path_buf());
        }
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Where axe-core's `axe.min.js` is: `$EXHAUST_AXE_JS`, else where
/// `scripts/services` installs it, else npm's global folders.
fn axe_js() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("EXHAUST_AXE_JS") {
        candidates.push(p.into());
    }
    let tools = std::env::var("EXHAUST_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/exhaust-tools"));
    candidates.push(tools.join("node_modules/axe-core/axe.min.js"));
    for root in ["/usr/local/lib/node_modules", "/usr/lib/node_modules"] {
        candidates.push(Path::new(root).join("axe-core/axe.min.js"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "axe-core is needed for the console's accessibility checks and was not found \
             (looked at $EXHAUST_AXE_JS, $EXHAUST_TOOLS_DIR or ~/.cache/exhaust-tools/node_modules/axe-core, \
             and npm's global folders): run scripts/services, or \
             `npm install --prefix ~/.cache/exhaust-tools axe-core`"
        )
    })
}

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_driver() -> Driver {
    let missing = |what: &str| -> ! {
        panic!(
            "{what} is needed for the console's browser tests and was not found: run \
             scripts/services, or `apt-get install chromium chromium-driver` \
             (or set EXHAUST_CHROMIUM / EXHAUST_CHROMEDRIVER)"
        )
    };
    let env_or = |var: &str, names: &[&str]| match std::env::var(var) {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => find_program(names),
    };
    let driver = env_or(
        "EXHAUST_CHROMEDRIVER",
        &["chromedriver", "/usr/bin/chromedriver"],
    )
    .unwrap_or_else(|| missing("chromedriver"));
    // Debian's `chromium` is a shell wrapper; the driver wants the binary.
    let browser = env_or(
        "EXHAUST_CHROMIUM",
        &[
            "/usr/lib/chromium/chromium",
            "chromium",
            "chromium-browser",
            "google-chrome",
        ],
    )
    .unwrap_or_else(|| missing("chromium"));
    let port = free_port();
    let child = Command::new(&driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(&status).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = browser;
    Driver {
        child,
        url,
        _profile: tempfile::tempdir().expect("profile folder"),
    }
}

async fn browser(driver: &Driver) -> Client {
    let browser = std::env::var("EXHAUST_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            find_program(&[
                "/usr/lib/chromium/chromium",
                "chromium",
                "chromium-browser",
                "google-chrome",
            ])
        })
        .expect("chromium");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": browser.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--hide-scrollbars", "--force-device-scale-factor=1",
                format!("--user-data-dir={}", driver._profile.path().display()),
                "--window-size=1440,1000",
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session of headless Chromium")
}

/// A script's JSON result.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script")
}

/// Sets the viewport's width (and a height).
async fn width(c: &Client, w: u32) {
    c.set_window_size(w, 900).await.expect("window size");
    // The window's size includes no browser chrome in headless mode; make
    // sure the page sees the width asked for.
    let inner = js(c, "return window.innerWidth").await;
    assert_eq!(inner.as_u64(), Some(u64::from(w)), "viewport width");
}

/// A screenshot of the whole page at width `w`, saved as `name`.
async fn screenshot(c: &Client, dir: &Path, name: &str, w: u32) {
    width(c, w).await;
    // The window's height includes the browser's own frame (in headless
    // mode too): the page's full height plus that frame.
    let sizes = js(
        c,
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]",
    )
    .await;
    let h = sizes[0].as_u64().unwrap_or(900) + sizes[1].as_u64().unwrap_or(0);
    let h = u32::try_from(h).unwrap_or(900).clamp(400, 12_000);
    c.set_window_size(w, h).await.expect("window size");
    // No page may be wider than the screen: text would be cut or need a
    // sideways scroll of the whole page (a table region may scroll).
    let overflow = js(
        c,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    )
    .await;
    assert_eq!(overflow.as_i64(), Some(0), "{name} is wider than {w} px");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}-{w}.png")), png).expect("screenshot file");
    width(c, w).await;
}

/// The element `css` names, waiting for it (after a navigation).
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} in the page: {e}"))
}

/// Runs axe-core in the page; panics on a serious or critical violation.
async fn axe(c: &Client, axe_source: &str, page: &str) {
    c.execute(axe_source, vec![]).await.expect("axe-core loads");
    let result = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {resultTypes: ['violations']})
               .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))))
               .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await
        .expect("axe runs");
    let bad: Vec<&Value> = result
        .as_array()
        .expect("violations")
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "axe-core on {page}: {bad:#?}");
}

/// Walks the page with Tab from the top: every link, button and field
/// (and scrollable region) is reached once, in page order, and shows a
/// focus ring.
async fn keyboard(c: &Client, page: &str) {
    let expected = js(
        c,
        "const all = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, [tabindex=\"0\"]')]
           .filter(e => !e.disabled && e.getClientRects().length > 0);
         all.forEach((e, i) => e.dataset.kb = i);
         document.activeElement && document.activeElement.blur();
         window.scrollTo(0, 0);
         return all.length",
    )
    .await
    .as_u64()
    .expect("count");
    let body = c.find(Locator::Css("body")).await.expect("body");
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..expected + 1 {
        body.send_keys(&Key::Tab.to_string()).await.expect("tab");
        let who = js(
            c,
            "const e = document.activeElement;
             const s = getComputedStyle(e);
             return {kb: e.dataset.kb === undefined ? null : Number(e.dataset.kb),
                     what: e.outerHTML.slice(0, 100),
                     ring: s.outlineStyle !== 'none' && s.outlineWidth !== '0px'}",
        )
        .await;
        let Some(kb) = who["kb"].as_u64() else {
            break;
        };
        assert_eq!(
            who["ring"],
            json!(true),
            "{page}: no visible focus on {}",
            who["what"]
        );
        seen.push(kb);
    }
    let order: Vec<u64> = (0..expected).collect();
    assert_eq!(
        seen, order,
        "{page}: Tab order over the page's {expected} controls"
    );
}

// ---------------------------------------------------------------------------
// The numbers, counted from the CSV independently of the summary.

/// The CSV as rows of fields (the sample's fields hold no comma or quote).
fn rows_of(csv: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// The tables of the batch page, by figure id: rows of cell texts.
async fn page_tables(c: &Client) -> BTreeMap<String, Vec<Vec<String>>> {
    let v = js(
        c,
        "return [...document.querySelectorAll('table.numbers')].map(t => [t.dataset.figure,
            [...t.tBodies[0].rows].map(r => [...r.cells].map(x => x.textContent.trim()))])",
    )
    .await;
    serde_json::from_value::<Vec<(String, Vec<Vec<String>>)>>(v)
        .expect("tables")
        .into_iter()
        .collect()
}

/// What each figure's SVG draws (`data-value`s, in order), by figure id.
async fn drawn(c: &Client) -> BTreeMap<String, Vec<u64>> {
    let v = js(
        c,
        "return [...document.querySelectorAll('svg.chart')].map(s => [s.dataset.figure,
            [...s.querySelectorAll('[data-value]')].map(e => Number(e.dataset.value))])",
    )
    .await;
    serde_json::from_value::<Vec<(String, Vec<u64>)>>(v)
        .expect("svgs")
        .into_iter()
        .collect()
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("{s:?} is not a count"))
}

fn score_of(s: &str) -> f64 {
    s.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{s:?} is not a score"))
}

/// Checks every table of the batch page against the report's CSV.
fn check_tables(csv: &str, tables: &BTreeMap<String, Vec<Vec<String>>>) {
    let (header, rows) = rows_of(csv);
    let n = rows.len() as u64;
    let count =
        |i: usize, pred: &dyn Fn(&str) -> bool| rows.iter().filter(|r| pred(&r[i])).count() as u64;

    // Learners by progress band: (label, from, to, learners, share).
    let p = col(&header, "Progress");
    let bands = &tables["progress"];
    assert_eq!(bands.len(), 6);
    for b in bands {
        let (lo, hi) = (num(&b[1]), num(&b[2]));
        let expected = count(p, &|v| (lo..=hi).contains(&num(v)));
        assert_eq!(num(&b[3]), expected, "progress band {b:?}");
    }
    assert_eq!(bands.iter().map(|b| num(&b[3])).sum::<u64>(), n);

    // Each unit: (#, name, id, completed, in progress, not started, blank, share).
    let units = &tables["units"];
    let unit_cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.ends_with(" - Progress"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        units.len(),
        unit_cols.len(),
        "one row per unit, in course order"
    );
    for (u, &i) in units.iter().zip(&unit_cols) {
        assert_eq!(format!("{} - Progress", u[2]), header[i], "course order");
        assert_eq!(num(&u[3]), count(i, &|v| v == "100"), "{u:?}");
        assert_eq!(
            num(&u[4]),
            count(i, &|v| !v.is_empty() && v != "0" && v != "100"),
            "{u:?}"
        );
        assert_eq!(num(&u[5]), count(i, &|v| v == "0"), "{u:?}");
        assert_eq!(num(&u[6]), count(i, &|v| v.is_empty()), "{u:?}");
    }

    // Each assessment: (score, from, to, learners) rows and a "No score" row.
    let score_cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| h.ends_with(" - Score"))
        .map(|(i, _)| i)
        .collect();
    assert!(!score_cols.is_empty());
    for (k, &i) in score_cols.iter().enumerate() {
        let t = &tables[&format!("scores-{}", k + 1)];
        let (last, bins) = t.split_last().expect("rows");
        assert_eq!(last[0], "No score");
        assert_eq!(num(&last[3]), count(i, &|v| v.is_empty()));
        for (j, b) in bins.iter().enumerate() {
            let (lo, hi) = (score_of(&b[1]), score_of(&b[2]));
            let closed = j + 1 == bins.len() || lo == hi;
            let expected = count(i, &|v| {
                !v.is_empty() && {
                    let s = score_of(v);
                    s >= lo && (s < hi || (closed && s <= hi))
                }
            });
            assert_eq!(num(&b[3]), expected, "scores-{} {b:?}", k + 1);
        }
    }

    // Over time: (period, enrolled, completed, enrolled so far, completed so far).
    let day = |v: &str| {
        v.get(..10)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let start = |label: &str| {
        let d = label.trim_start_matches("week of ");
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .or_else(|_| chrono::NaiveDate::parse_from_str(&format!("{d}-01"), "%Y-%m-%d"))
            .unwrap_or_else(|_| panic!("period {label}"))
    };
    let timeline = &tables["timeline"];
    let (e, c) = (
        col(&header, "Enrolment Date"),
        col(&header, "Completion Date"),
    );
    for (j, t) in timeline.iter().enumerate() {
        let from = start(&t[0]);
        let to = timeline.get(j + 1).map(|next| start(&next[0]));
        let within = |v: &str| day(v).is_some_and(|d| d >= from && to.is_none_or(|to| d < to));
        assert_eq!(
            num(&t[1]),
            count(e, &|v| !v.is_empty() && within(v)),
            "{t:?}"
        );
        assert_eq!(
            num(&t[2]),
            count(c, &|v| !v.is_empty() && within(v)),
            "{t:?}"
        );
    }
    let last = timeline.last().expect("periods");
    assert_eq!(num(&last[3]), count(e, &|v| day(v).is_some()));
    assert_eq!(num(&last[4]), count(c, &|v| day(v).is_some()));

    // Certificates: (status, learners, share).
    let s = col(&header, "Certificate Status");
    for t in &tables["certificates"] {
        let status = if t[0] == "None" { "" } else { t[0].as_str() };
        assert_eq!(num(&t[1]), count(s, &|v| v == status), "{t:?}");
    }
}

/// What each SVG draws is its table's numbers.
fn check_drawn(tables: &BTreeMap<String, Vec<Vec<String>>>, drawn: &BTreeMap<String, Vec<u64>>) {
    let column = |id: &str, i: usize, skip_last: bool| -> Vec<u64> {
        let t = &tables[id];
        let rows = if skip_last { &t[..t.len() - 1] } else { &t[..] };
        rows.iter().map(|r| num(&r[i])).collect()
    };
    assert_eq!(drawn["progress"], column("progress", 3, false));
    assert_eq!(drawn["certificates"], column("certificates", 1, false));
    let units: Vec<u64> = tables["units"]
        .iter()
        .flat_map(|u| [num(&u[3]), num(&u[4]), num(&u[5])])
        .collect();
    assert_eq!(drawn["units"], units);
    for (id, values) in drawn.iter().filter(|(id, _)| id.starts_with("scores-")) {
        assert_eq!(values, &column(id, 3, true), "{id}");
    }
    let last = tables["timeline"].last().expect("periods");
    assert_eq!(drawn["timeline"], [num(&last[3]), num(&last[4])]);
}

/// The report `exhaust report --batch-id B` writes for the sample (the
/// same library calls and defaults as the command).
async fn cli_csv(batch: &str) -> String {
    let source = Snapshot::open(sample(), SnapshotOptions::default()).expect("sample");
    let mut sink = exhaust_writer::CsvSink::new(Vec::new());
    build_report(
        &source,
        &exhaust_core::BatchId::new(batch),
        None,
        &ReportOptions::default(),
        &mut sink,
    )
    .await
    .expect("report");
    String::from_utf8(sink.finish().expect("csv").0).expect("utf-8")
}

fn screenshot_dir(store: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("console-screenshots")
        .join(store);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

// ---------------------------------------------------------------------------
// The scenario in the browser.

async fn console_in_a_browser(w: World, store: &str) {
    let axe_source = std::fs::read_to_string(axe_js()).expect("axe.min.js");
    let driver = start_driver().await;
    let mut config = w.config(&sample());
    config.worker = true;
    // A slow poll: the page sees the request pending first, then updates.
    config.poll = Duration::from_secs(6);
    let server = w.start(config).await;
    let base = server.url();
    let shots = screenshot_dir(store);
    let c = browser(&driver).await;
    let result = async {
        // Choose the channel (mode none, loopback).
        c.goto(&format!("{base}/console")).await.expect("console");
        let h1 = c.find(Locator::Css("h1")).await.expect("h1").text().await.expect("text");
        assert_eq!(h1, "Choose a channel");
        axe(&c, &axe_source, "choose a channel").await;
        c.find(Locator::Id("channel"))
            .await
            .expect("channel field")
            .send_keys(SAMPLE_CHANNEL)
            .await
            .expect("type");
        c.find(Locator::Css("main button[type=submit]"))
            .await
            .expect("button")
            .click()
            .await
            .expect("submit");
        let channel = wait_for(&c, ".channel code").await.text().await.expect("text");
        assert_eq!(channel, SAMPLE_CHANNEL);

        // A request from the form: first a mistake, in Sunbird's words.
        c.goto(&format!("{base}/console/new")).await.expect("new");
        keyboard(&c, "new request").await;
        for w in [360, 1440] {
            width(&c, w).await;
            axe(&c, &axe_source, &format!("new request at {w}")).await;
        }
        c.find(Locator::Id("tag")).await.expect("tag").clear().await.expect("clear");
        c.find(Locator::Id("key")).await.expect("key").send_keys("never-echoed-key").await.expect("key");
        c.find(Locator::Css("button.primary")).await.expect("submit").click().await.expect("submit");
        let summary = wait_for(&c, ".error-summary").await.text().await.expect("text");
        assert!(summary.contains("tag is empty"), "{summary}");
        let source = c.source().await.expect("page");
        assert!(!source.contains("never-echoed-key"), "the key came back in the page");
        screenshot(&c, &shots, "new-request-errors", 360).await;
        screenshot(&c, &shots, "new-request-errors", 1440).await;
        axe(&c, &axe_source, "new request with errors").await;

        c.find(Locator::Id("tag")).await.expect("tag").send_keys("console-test").await.expect("tag");
        c.find(Locator::Id("batches")).await.expect("batches").send_keys(SAMPLE_BATCH).await.expect("batch");
        c.find(Locator::Css("button.primary")).await.expect("submit").click().await.expect("submit");
        let notice = wait_for(&c, ".notice").await.text().await.expect("text");
        assert!(notice.contains("submitted"), "{notice}");
        let row = c.find(Locator::Css("tr[data-request]")).await.expect("the request's row");
        let first = row.attr("data-status").await.expect("status").unwrap_or_default();
        assert!(
            first == "SUBMITTED" || first == "PROCESSING",
            "the page should show the request pending first, not {first}"
        );
        screenshot(&c, &shots, "requests-pending", 360).await;
        screenshot(&c, &shots, "requests-pending", 1440).await;
        axe(&c, &axe_source, "requests, pending").await;
        keyboard(&c, "requests").await;

        // The list updates itself: measure layout shifts and the row's box.
        js(
            &c,
            "window.__shift = 0;
             new PerformanceObserver(l => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.__shift += e.value; })
               .observe({type: 'layout-shift'});
             const r = document.querySelector('tr[data-request]').getBoundingClientRect();
             window.__box = [r.top, r.height, document.querySelector('table.requests').getBoundingClientRect().height];
             return null",
        )
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = js(&c, "return document.querySelector('tr[data-request]').dataset.status").await;
            if status == "SUCCESS" {
                break;
            }
            assert_ne!(status, "FAILED", "the request failed");
            assert!(std::time::Instant::now() < deadline, "no SUCCESS within 60 s: {status}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let moved = js(
            &c,
            "const r = document.querySelector('tr[data-request]').getBoundingClientRect();
             return {shift: window.__shift, before: window.__box,
                     after: [r.top, r.height, document.querySelector('table.requests').getBoundingClientRect().height]}",
        )
        .await;
        assert!(moved["shift"].as_f64().unwrap_or(1.0) < 0.001, "layout shift on refresh: {moved}");
        assert_eq!(moved["before"], moved["after"], "the row moved or resized on refresh");
        screenshot(&c, &shots, "requests-success", 360).await;
        screenshot(&c, &shots, "requests-success", 1440).await;
        axe(&c, &axe_source, "requests, built").await;

        // The download is the report `exhaust report` writes.
        let href = c
            .find(Locator::Css("tr[data-request] a[download]"))
            .await
            .expect("download link")
            .attr("href")
            .await
            .expect("href")
            .expect("a link");
        let (status, _, zip) = Api::new(&server).get(&href).await;
        assert_eq!(status, StatusCode::OK);
        let (_, csv) = unzip(&zip);
        assert_eq!(csv, cli_csv(SAMPLE_BATCH).await, "the console's file is the CLI's");

        // The batch at a glance.
        c.find(Locator::Css("tr[data-request] a[href*='/batches/']"))
            .await
            .expect("batch link")
            .click()
            .await
            .expect("open");
        wait_for(&c, "section.figure").await;
        let figures = js(&c, "return document.querySelectorAll('section.figure').length").await;
        assert!(figures.as_u64().unwrap_or(0) >= 5, "{figures} pictures");
        let named = js(
            &c,
            "return [...document.querySelectorAll('section.figure')].every(s =>
                s.querySelector('h2').textContent.trim() && s.querySelector('svg title').textContent.trim()
                && s.querySelector('svg desc').textContent.trim() && s.querySelector('table.numbers caption')
                && s.querySelector('a[download]'))",
        )
        .await;
        assert_eq!(named, json!(true), "each picture has a title, a description, a table and a CSV link");
        let tables = page_tables(&c).await;
        check_tables(&csv, &tables);
        check_drawn(&tables, &drawn(&c).await);
        // Each picture's CSV holds its table.
        let csvs = c
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 Promise.all([...document.querySelectorAll('section.figure a[download]')].map(a =>
                   fetch(a.href).then(r => r.text()).then(t => [a.closest('section').id, t])))
                   .then(done);",
                vec![],
            )
            .await
            .expect("csv downloads");
        for pair in csvs.as_array().expect("list") {
            let id = pair[0].as_str().expect("id");
            let text = pair[1].as_str().expect("csv");
            let lines: Vec<Vec<String>> = text
                .lines()
                .skip(1)
                .map(|l| l.split(',').map(|s| s.trim_matches('"').to_string()).collect())
                .collect();
            assert_eq!(&lines, &tables[id], "{id}.csv");
        }
        screenshot(&c, &shots, "batch", 360).await;
        screenshot(&c, &shots, "batch", 1440).await;
        for w in [360, 1440] {
            width(&c, w).await;
            axe(&c, &axe_source, &format!("batch page at {w}")).await;
        }
        keyboard(&c, "batch page").await;
    }
    .await;
    let _ = c.close().await;
    drop(driver);
    server.shutdown().await.expect("stops");
    println!("console screenshots: {}", shots.display());
    result
}

mod browser {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        console_in_a_browser(World::sqlite().await, "sqlite").await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        console_in_a_browser(World::postgres().await, "postgres").await;
    }
}

// ---------------------------------------------------------------------------
// Over plain HTTP: sessions, channels, forms.

/// A browser-like client of plain HTTP: keeps the console's cookie, does
/// not follow redirects.
struct Jar {
    http: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

fn cookie_client() -> Jar {
    Jar {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        cookie: Mutex::new(None),
    }
}

impl Jar {
    async fn send(&self, mut req: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = self.cookie.lock().expect("jar").clone();
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send().await.expect("response");
        if let Some(set) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            *self.cookie.lock().expect("jar") = (!pair.ends_with('=')).then_some(pair);
        }
        r
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(formed(self.http.post(url), form)).await
    }
}

/// A form body (`application/x-www-form-urlencoded`) on a request.
fn formed<K: AsRef<str>, V: AsRef<str>>(
    req: reqwest::RequestBuilder,
    pairs: &[(K, V)],
) -> reqwest::RequestBuilder {
    let enc = |t: &str| {
        t.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
        .collect();
    req.header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
}

async fn text(http: &Jar, url: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let r = http.send(http.http.get(url)).await;
    let status = r.status();
    let headers = r.headers().clone();
    (status, r.text().await.expect("body"), headers)
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("value").to_string()
}

/// Token mode: a pasted token becomes a session (the token itself is in
/// no cookie), the session shows its channel's requests only, and ends as
/// soon as the token is revoked.
async fn token_sessions(w: World) {
    let mut config = w.config(&sample());
    config.settings.auth.mode = Some(AuthMode::Token);
    let server = w.start(config).await;
    let base = server.url();
    let store = server.state().store().clone();
    let mut random = [7u8; exhaust_core::auth::TOKEN_RANDOM_BYTES];
    random[0] = w.t.dir().as_os_str().len() as u8;
    let token = store
        .create_token(SAMPLE_CHANNEL, "console", 1_700_000_000_000, &random)
        .await
        .expect("token");
    // A request of the channel and one of another channel, same tag text.
    let api = Api::new(&server).with_bearer(&token.text);
    let a = api
        .submit(
            Some(SAMPLE_CHANNEL),
            &body("t", "u", json!({"batchId": SAMPLE_BATCH}), None),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let other = exhaust_core::request::NewRequest {
        tag: "t".into(),
        dataset: "progress-exhaust".into(),
        requested_by: "u".into(),
        channel: "another-org".into(),
        dataset_config: json!({"batchId": SAMPLE_BATCH}),
        encryption_key: None,
    }
    .into_job_request(Utc::now())
    .expect("row");
    store.submit(&other).await.expect("other channel's request");

    let http = cookie_client();
    let (status, _, headers) = text(&http, &format!("{base}/console")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/console/sign-in");
    let cookie = headers["set-cookie"].to_str().expect("cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let (_, page, _) = text(&http, &format!("{base}/console/sign-in")).await;
    let csrf = csrf_of(&page);
    // A wrong token: refused, in the page.
    let r = http
        .post(
            &format!("{base}/console/sign-in"),
            &[
                ("csrf", csrf.as_str()),
                ("token", "exh_0000000000000000_00"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .post(
            &format!("{base}/console/sign-in"),
            &[("csrf", csrf.as_str()), ("token", token.text.as_str())],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        !cookie.contains(&token.text),
        "the token is not in the cookie"
    );
    let (status, page, headers) = text(&http, &format!("{base}/console")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("default-src 'none'")
    );
    assert!(page.contains(a.json["result"]["requestId"].as_str().expect("id")));
    assert!(
        !page.contains(&other.request_id),
        "another channel's request is shown"
    );
    // Another channel's request, by its own tag: not found.
    let (status, _, _) = text(
        &http,
        &format!(
            "{base}/console/requests/{}/batches/{SAMPLE_BATCH}?tag=t",
            other.request_id
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    store
        .revoke_token(&token.id, 1_700_000_000_001)
        .await
        .expect("revoke");
    let (status, _, headers) = text(&http, &format!("{base}/console")).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a revoked token's session ends"
    );
    assert_eq!(headers["location"], "/console/sign-in");
    server.shutdown().await.expect("stops");
}
on_both_stores!(tokens, World, token_sessions);

/// Forms are refused without the session's CSRF token or from another
/// site, and a chosen channel shows only its own requests (mode none).
async fn forms_and_channels(w: World) {
    let server = w.start(w.config(&sample())).await;
    let base = server.url();
    let http = cookie_client();
    // The server's root leads people to the console.
    let (status, _, headers) = text(&http, &format!("{base}/")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/console");
    let (status, _, _) = text(&http, &format!("{base}/console?channel={SAMPLE_CHANNEL}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page, _) = text(&http, &format!("{base}/console/new")).await;
    let csrf = csrf_of(&page);
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("tag", "t".to_string()),
            ("batches", SAMPLE_BATCH.to_string()),
            ("format", "csv".to_string()),
        ]
    };
    let new = format!("{base}/console/new");
    let r = http.send(formed(http.http.post(&new), &form(""))).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let r = http
        .send(formed(
            http.http.post(&new).header("Sec-Fetch-Site", "cross-site"),
            &form(&csrf),
        ))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "another site");
    // A token of another session does not pass either.
    let stranger = cookie_client();
    text(&stranger, &format!("{base}/console?channel=another-org")).await;
    let (_, other_page, _) = text(&stranger, &format!("{base}/console/new")).await;
    let r = http
        .send(formed(http.http.post(&new), &form(&csrf_of(&other_page))))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "another session's token");
    let r = http.send(formed(http.http.post(&new), &form(&csrf))).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, mine, _) = text(&http, &format!("{base}/console")).await;
    assert!(mine.contains("data-request="), "{mine}");
    let (_, theirs, _) = text(&stranger, &format!("{base}/console")).await;
    assert!(
        !theirs.contains("data-request="),
        "another channel sees the request"
    );
    // Filters: no FAILED request.
    let (_, failed, _) = text(&http, &format!("{base}/console?status=FAILED")).await;
    assert!(failed.contains("No requests match."));
    server.shutdown().await.expect("stops");
}
on_both_stores!(forms, World, forms_and_channels);

/// The summary route of `api` for `channel`, with this query.
async fn get_summary(api: &Api, channel: &str, query: String) -> Answer {
    let req = api.http.get(format!(
        "{}/dataset/v1/request/summary/glance?{query}",
        api.base
    ));
    api.send(req, Some(channel)).await
}

/// `GET /dataset/v1/request/summary/{tag}`: a built batch's summary as
/// JSON, to the request's channel only.
async fn summary_json(w: World) {
    let server = w.start(w.config(&sample())).await;
    let api = Api::new(&server);
    let a = api
        .submit(
            Some(SAMPLE_CHANNEL),
            &body("glance", "u", json!({"batchId": SAMPLE_BATCH}), None),
        )
        .await;
    let rid = a.json["result"]["requestId"]
        .as_str()
        .expect("id")
        .to_string();
    let q = format!("requestId={rid}&batchId={SAMPLE_BATCH}");
    // Not built yet.
    let a = get_summary(&api, SAMPLE_CHANNEL, q.clone()).await;
    assert_error(
        &a,
        404,
        "exhaust.dataset.request.summary",
        "RESOURCE_NOT_FOUND",
        "the request has not built this batch",
    );
    let run = run_worker_once(&w, &server, &sample()).await;
    assert_eq!(run.succeeded, 1, "{run}");
    let a = get_summary(&api, SAMPLE_CHANNEL, q.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_envelope(&a, "exhaust.dataset.request.summary", "OK", "successful");
    let s = &a.json["result"]["summary"];
    assert_eq!(s["learners"], 38);
    assert_eq!(s["batchId"], SAMPLE_BATCH);
    assert_eq!(s["progress"].as_array().map(Vec::len), Some(6));
    assert!(!a.text.contains("\"userid\"") && !a.text.contains("User UUID"));
    // Another channel: not its request.
    let a = get_summary(&api, "another-org", q.clone()).await;
    assert_error(
        &a,
        404,
        "exhaust.dataset.request.summary",
        "RESOURCE_NOT_FOUND",
        "no job available with the given request_id and tag",
    );
    let a = get_summary(&api, SAMPLE_CHANNEL, format!("requestId={rid}")).await;
    assert_error(
        &a,
        400,
        "exhaust.dataset.request.summary",
        "CLIENT_ERROR",
        "requestId and batchId are required",
    );
    let a = get_summary(
        &api,
        SAMPLE_CHANNEL,
        format!("requestId={rid}&batchId=other"),
    )
    .await;
    assert_eq!(a.status.as_u16(), 404, "{}", a.text);
    server.shutdown().await.expect("stops");
}
on_both_stores!(summary_route, World, summary_json);
