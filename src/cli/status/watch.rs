//! `conveyor status --watch`: follows the Pipelines and their Releases through watches (no
//! polling) and shows their progress until every pipeline has settled (see [`super::settle`]).
//!
//! On a terminal the frame is redrawn in place: the cursor goes back up over the previous frame
//! and each line is overwritten, so the screen never blanks (no flicker) and nothing but the
//! frame's own lines is touched (no full-screen takeover). A frame is drawn when something
//! changed, or each second for the elapsed times. Anywhere else, one line per change, without
//! escape codes. `NO_COLOR` turns colours off; `TERM=dumb` gets lines.
//!
//! Exit: 0 when every pipeline settled Ready; 1 when one is Stalled or failed, or `--timeout`
//! passed; 130 on Ctrl-C (128 + SIGINT, what shells report for an interrupted command).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use anyhow::Context as _;
use futures::{StreamExt as _, future};
use jiff::Timestamp;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, reflector, watcher};

use super::frame::{self, End, Scene};
use super::settle::{Verdict, failed_releases, verdict};
use super::{StatusArgs, fetch};
use crate::api::{Pipeline, Release};

/// Exit code after Ctrl-C: 128 + SIGINT.
const INTERRUPTED: i32 = 130;

/// Runs `conveyor status --watch`.
pub fn watch(args: &StatusArgs) -> anyhow::Result<()> {
    let (runtime, client) = super::super::connect("conveyor status --watch")?;
    // The same refusals as without --watch (unknown Pipeline, CRDs missing), before any drawing.
    let (pipelines, _, scope) = runtime.block_on(fetch(client.clone(), args))?;
    if pipelines.is_empty() {
        eprintln!("no Pipelines in {scope}");
        return Ok(());
    }
    let namespace = args.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let mut screen = Screen::new(std::io::stdout().lock());
    let (end, verdicts, pipelines) = runtime.block_on(follow(client, args, &namespace, &mut screen))?;
    match end {
        End::Interrupted => {
            drop(screen);
            drop(runtime);
            std::process::exit(INTERRUPTED);
        }
        End::TimedOut => {
            let waiting = waiting_for(&pipelines, &verdicts);
            let limit = args.timeout.map(|t| humantime::format_duration(t).to_string()).unwrap_or_default();
            anyhow::bail!("not settled within --timeout {limit}; still waiting for {waiting}")
        }
        End::Settled => {
            let failed: Vec<String> = pipelines
                .iter()
                .zip(&verdicts)
                .filter_map(|(p, v)| match v {
                    Verdict::Failed(why) => Some(format!("{} is not Ready: {why}", p.name_any())),
                    _ => None,
                })
                .collect();
            if failed.is_empty() { Ok(()) } else { Err(anyhow::anyhow!(failed.join("; "))) }
        }
    }
}

/// What the first pipeline still in progress waits for.
fn waiting_for(pipelines: &[Pipeline], verdicts: &[Verdict]) -> String {
    pipelines
        .iter()
        .zip(verdicts)
        .find_map(|(p, v)| match v {
            Verdict::Waiting(what) => Some(format!("{}: {what}", p.name_any())),
            _ => None,
        })
        .unwrap_or_else(|| "the watch to start".to_owned())
}

/// Which watch an event came from.
#[derive(Clone, Copy)]
enum Source {
    Pipelines,
    Releases,
}

/// Watches until the pipelines settle, the timeout passes or Ctrl-C; shows each change on
/// `screen`. Returns how it ended with the last verdicts and pipelines.
async fn follow<W: Write>(
    client: kube::Client,
    args: &StatusArgs,
    namespace: &str,
    screen: &mut Screen<W>,
) -> anyhow::Result<(End, Vec<Verdict>, Vec<Pipeline>)> {
    let (pipelines_api, releases_api): (Api<Pipeline>, Api<Release>) = if args.all_namespaces {
        (Api::all(client.clone()), Api::all(client))
    } else {
        (Api::namespaced(client.clone(), namespace), Api::namespaced(client, namespace))
    };
    let config = match &args.pipeline {
        Some(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        None => watcher::Config::default(),
    };
    let (pipelines, writer) = reflector::store::<Pipeline>();
    let pipeline_events = reflector(writer, watcher(pipelines_api, config).default_backoff())
        .map(|e| (Source::Pipelines, e.map(|e| initialised(&e)).map_err(|e| e.to_string())))
        .boxed();
    let (releases, writer) = reflector::store::<Release>();
    let release_events = reflector(writer, watcher(releases_api, watcher::Config::default()).default_backoff())
        .map(|e| (Source::Releases, e.map(|e| initialised(&e)).map_err(|e| e.to_string())))
        .boxed();
    let mut events = futures::stream::select(pipeline_events, release_events);

    let started = Timestamp::now();
    // Only the elapsed times need a clock; everything else comes from the watches.
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let timeout = async {
        match args.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let (mut pipelines_synced, mut releases_synced) = (false, false);
    let mut trouble: Option<String> = None;
    let mut old_failures: Option<std::collections::BTreeSet<String>> = None;
    loop {
        let end = tokio::select! {
            event = events.next() => match event {
                Some((source, Ok(done))) => {
                    if done {
                        match source {
                            Source::Pipelines => pipelines_synced = true,
                            Source::Releases => releases_synced = true,
                        }
                    }
                    trouble = None;
                    None
                }
                // The watcher retries with backoff; say so meanwhile.
                Some((_, Err(e))) => {
                    trouble = Some(e);
                    None
                }
                None => anyhow::bail!("the watch of the Kubernetes API ended unexpectedly"),
            },
            _ = ticker.tick() => None,
            signal = &mut interrupt => {
                signal.context("cannot listen for Ctrl-C")?;
                Some(End::Interrupted)
            }
            () = &mut timeout => Some(End::TimedOut),
        };
        let synced = pipelines_synced && releases_synced;
        if !synced && end.is_none() {
            continue;
        }
        let mut shown: Vec<Pipeline> = pipelines.state().iter().map(|p| (**p).clone()).collect();
        shown.sort_by_key(|p| (p.namespace(), p.name_any()));
        if let Some(name) = &args.pipeline
            && synced
            && shown.is_empty()
        {
            anyhow::bail!("Pipeline {name} in namespace {namespace} was deleted");
        }
        let all_releases: Vec<Release> = releases.state().iter().map(|r| (**r).clone()).collect();
        // What had failed when the caches first synced is not news: the watch reports what follows.
        if synced && old_failures.is_none() {
            old_failures = Some(failed_releases(&shown, &all_releases));
        }
        let old = old_failures.clone().unwrap_or_default();
        let verdicts: Vec<Verdict> = shown.iter().map(|p| verdict(p, &all_releases, &old)).collect();
        let end = end.or_else(|| (synced && verdicts.iter().all(Verdict::settled)).then_some(End::Settled));
        let scene = Scene {
            pipelines: &shown,
            releases: &all_releases,
            verdicts: &verdicts,
            started,
            now: Timestamp::now(),
            all_namespaces: args.all_namespaces,
            trouble: trouble.as_deref(),
        };
        screen.show(&scene, end.as_ref()).context("cannot write to standard output")?;
        if let Some(end) = end {
            return Ok((end, verdicts, shown));
        }
    }
}

/// Whether `event` ends a watch's (re)initial listing: its store is complete.
fn initialised<K>(event: &watcher::Event<K>) -> bool {
    matches!(event, watcher::Event::InitDone)
}

/// Where the watch draws: a terminal (redrawn frames) or anything else (lines).
pub struct Screen<W: Write> {
    out: W,
    /// Redraw frames in place (a terminal); else print lines.
    redraw: bool,
    color: bool,
    /// The frame on screen, to redraw over it and to skip a redraw that would change nothing.
    drawn: Vec<String>,
    /// Lines mode: the text printed last for each fact.
    printed: HashMap<String, String>,
}

impl<W: Write> Screen<W> {
    /// A screen on `out`; frames when stdout is a terminal that can move its cursor.
    pub fn new(out: W) -> Self {
        let redraw = std::io::stdout().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb");
        // https://no-color.org: set and not empty.
        let color = redraw && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Self::with(out, redraw, color)
    }

    /// A screen that redraws frames or prints lines, as told.
    pub fn with(out: W, redraw: bool, color: bool) -> Self {
        Self { out, redraw, color, drawn: Vec::new(), printed: HashMap::new() }
    }

    /// Shows `scene`; `end` makes it the last time.
    pub fn show(&mut self, scene: &Scene, end: Option<&End>) -> std::io::Result<()> {
        if self.redraw {
            let lines = frame::frame(scene, self.color, end);
            if lines != self.drawn || end.is_some() {
                self.out.write_all(redraw(self.drawn.len(), &lines).as_bytes())?;
                self.drawn = lines;
            }
        } else {
            for (key, text) in frame::facts(scene) {
                if self.printed.get(&key) != Some(&text) {
                    writeln!(self.out, "{}", frame::stamped(&text, scene.started, scene.now))?;
                    self.printed.insert(key, text);
                }
            }
            if let Some(end) = end {
                writeln!(self.out)?;
                for line in frame::frame(scene, false, Some(end)) {
                    writeln!(self.out, "{line}")?;
                }
            }
        }
        self.out.flush()
    }
}

/// The bytes that replace a frame of `previous` lines with `lines`, written at once: line wrap
/// off (a line wider than the terminal is cut instead of taking two rows, which would throw the
/// cursor-up count off), cursor up to the previous frame's first line, each line rewritten and
/// cleared to its end, anything below cleared (a shorter frame, or a `^C` echoed by the
/// terminal), line wrap back on.
pub fn redraw(previous: usize, lines: &[String]) -> String {
    let mut out = String::from("\x1b[?7l");
    if previous > 0 {
        let _ = write!(out, "\r\x1b[{previous}A");
    }
    for line in lines {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J\x1b[?7h");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redraw_goes_back_over_the_previous_frame_and_clears_what_is_left() {
        let lines = ["a".to_owned(), "b".to_owned()];
        assert_eq!(redraw(0, &lines), "\x1b[?7la\x1b[K\nb\x1b[K\n\x1b[J\x1b[?7h");
        assert_eq!(redraw(3, &lines), "\x1b[?7l\r\x1b[3Aa\x1b[K\nb\x1b[K\n\x1b[J\x1b[?7h");
    }
}
