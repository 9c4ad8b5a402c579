//! Registry verbs: `pull`, `push`, `login`, `logout`, and the pull-on-demand of `run` and
//! `create`. Credentials live in Docker's `config.json` (see
//! `image::registry::credentials`); progress is drawn like Docker's (one line per layer,
//! redrawn on a terminal, plain state lines otherwise).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use engine::{Engine, PullRequest, PushRequest};
use image::Platform;
use image::registry::{
    CredentialStore, Credentials, LayerProgress, LayerState, PushProgress, PushState,
};

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out from a registry.
    Logout {
        /// The registry (default: Docker Hub).
        server: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Download all tagged images in the repository.
    #[arg(short, long)]
    all_tags: bool,
    /// Suppress verbose output.
    #[arg(short, long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable (`os/arch[/variant]`).
    #[arg(long)]
    platform: Option<String>,
    /// `NAME[:TAG|@DIGEST]`.
    name: String,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Suppress verbose output.
    #[arg(short, long)]
    quiet: bool,
    /// `NAME[:TAG]`.
    name: String,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    username: Option<String>,
    /// Password.
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

pub(crate) fn dispatch(engine: &Engine, command: &RegistryCommand) -> Result<i32> {
    match command {
        RegistryCommand::Pull(a) => pull(engine, a),
        RegistryCommand::Push(a) => push(engine, a),
        RegistryCommand::Login(a) => login(engine, a),
        RegistryCommand::Logout { server } => logout(server.as_deref()),
    }
}

fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    let store = CredentialStore::new(CredentialStore::default_path());
    store
        .get(registry)
        .with_context(|| format!("read credentials for {registry}"))
}

fn parse_platform(p: Option<&str>) -> Result<Option<Platform>> {
    p.map(|s| {
        Platform::parse(s).with_context(|| {
            format!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64")
        })
    })
    .transpose()
}

/// Stdout for the transfer threads: `dispatch` holds std's stdout lock for the whole verb,
/// so progress goes through a duplicate of the descriptor instead.
fn stdout_writer() -> Result<Box<dyn Write + Send>> {
    let fd = rustix::io::dup(std::io::stdout()).context("duplicate stdout")?;
    Ok(Box::new(std::fs::File::from(fd)))
}

/// `docker pull`.
pub(crate) fn pull(engine: &Engine, args: &PullArgs) -> Result<i32> {
    let platform = parse_platform(args.platform.as_deref())?;
    let tty = std::io::stdout().is_terminal();
    if !args.all_tags {
        pull_with(
            engine,
            &args.name,
            platform,
            args.quiet,
            stdout_writer()?,
            tty,
        )?;
        return Ok(0);
    }
    if name_has_tag(&args.name) {
        bail!("tag can't be used with --all-tags/-a");
    }
    let reference = engine::registry::parse_reference(&args.name)?;
    let tags = engine.list_tags(&args.name, credentials_for(&reference.registry)?)?;
    for tag in tags {
        let name = format!("{}:{tag}", reference.familiar_name());
        pull_with(
            engine,
            &name,
            platform.clone(),
            args.quiet,
            stdout_writer()?,
            tty,
        )?;
    }
    Ok(0)
}

/// Pulls `name`, drawing progress on `out` (a terminal when `tty`; unless `quiet`, when only
/// the reference is printed to stdout).
fn pull_with(
    engine: &Engine,
    name: &str,
    platform: Option<Platform>,
    quiet: bool,
    out: Box<dyn Write + Send>,
    tty: bool,
) -> Result<()> {
    let reference = engine::registry::parse_reference(name)?;
    let credentials = credentials_for(&reference.registry)?;
    let progress = Progress::new(out, tty && !quiet, quiet);
    if reference.tag.is_some() && reference.digest.is_none() && !name_has_tag(name) {
        progress.line(&format!(
            "Using default tag: {}",
            reference.tag.as_deref().unwrap_or("latest")
        ));
    }
    progress.line(&format!(
        "{}: Pulling from {}",
        reference.object(),
        reference.repository
    ));
    let req = PullRequest {
        reference: name.to_owned(),
        platform,
        credentials,
    };
    let result = engine.pull_image(&req, &|p| progress.layer(p))?;
    progress.line(&format!("Digest: {}", result.digest));
    let status = if result.up_to_date {
        "Image is up to date for"
    } else {
        "Downloaded newer image for"
    };
    progress.line(&format!("Status: {status} {}", result.reference.familiar()));
    if quiet {
        println!("{}", result.reference);
    } else {
        progress.line(&result.reference.to_string());
    }
    Ok(())
}

fn name_has_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':') || name.contains('@')
}

/// `run`/`create --pull`: `missing` pulls when the image is not stored, `always` pulls
/// every time, `never` leaves a missing image to fail the create. Progress goes to stderr, as
/// with Docker; a failed pull is the create's failure (exit 125).
pub(crate) fn ensure_image(
    engine: &Engine,
    image: &str,
    policy: &str,
    platform: Option<&str>,
) -> Result<()> {
    let pull = match policy {
        "never" => false,
        "always" => true,
        "missing" => !engine.has_image(image),
        other => bail!(
            "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
        ),
    };
    if !pull {
        return Ok(());
    }
    let platform = parse_platform(platform)?;
    let reference = engine::registry::parse_reference(image)
        .map_err(|e| anyhow::anyhow!("{:#}", anyhow::Error::from(e)))?;
    if policy == "missing" {
        eprintln!("Unable to find image '{}' locally", reference.familiar());
    }
    // Not an engine error any more: a failed pull inside run/create exits 125, not 1.
    let tty = std::io::stderr().is_terminal();
    pull_with(
        engine,
        image,
        platform,
        false,
        Box::new(std::io::stderr()),
        tty,
    )
    .map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// `docker push`.
pub(crate) fn push(engine: &Engine, args: &PushArgs) -> Result<i32> {
    let reference = engine::registry::parse_reference(&args.name)?;
    let credentials = credentials_for(&reference.registry)?;
    let tty = std::io::stdout().is_terminal();
    let progress = Progress::new(stdout_writer()?, tty && !args.quiet, args.quiet);
    if !name_has_tag(&args.name) {
        progress.line("Using default tag: latest");
    }
    progress.line(&format!(
        "The push refers to repository [{}]",
        reference.name()
    ));
    let req = PushRequest {
        reference: args.name.clone(),
        credentials,
    };
    let result = engine.push_image(&req, &|p| progress.push(p))?;
    let tag = result
        .reference
        .tag
        .clone()
        .unwrap_or_else(|| result.pushed.digest.to_string());
    if args.quiet {
        println!("{}", result.reference);
    } else {
        progress.line(&format!(
            "{tag}: digest: {} size: {}",
            result.pushed.digest, result.pushed.size
        ));
    }
    Ok(0)
}

/// `http://host:5000/v2/` → `host:5000`; Docker Hub's names → `docker.io`.
fn server_name(server: Option<&str>) -> String {
    let Some(s) = server else {
        return "docker.io".to_owned();
    };
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// `docker login`.
fn login(engine: &Engine, args: &LoginArgs) -> Result<i32> {
    let registry = server_name(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin = std::io::stdin();
    let password = if args.password_stdin {
        if args.username.is_none() {
            bail!("must provide --username with --password-stdin");
        }
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("read password from stdin")?;
        Some(line.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        args.password.clone()
    };
    let username = match &args.username {
        Some(u) => u.clone(),
        None => {
            if !stdin.is_terminal() {
                bail!("cannot perform an interactive login from a non TTY device");
            }
            prompt("Username: ", true)?
        }
    };
    let password = match password {
        Some(p) => p,
        None => {
            if !stdin.is_terminal() {
                bail!("cannot perform an interactive login from a non TTY device");
            }
            prompt("Password: ", false)?
        }
    };
    if username.is_empty() {
        bail!("username is empty");
    }
    if password.is_empty() {
        bail!("password is empty");
    }
    let creds = Credentials { username, password };
    engine.check_login(&registry, &creds)?;
    let store = CredentialStore::new(CredentialStore::default_path());
    store
        .store(&registry, &creds)
        .with_context(|| format!("store credentials for {registry}"))?;
    println!("Login Succeeded");
    Ok(0)
}

fn prompt(label: &str, echo: bool) -> Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{label}")?;
    stderr.flush()?;
    let stdin = std::io::stdin();
    let saved = if echo {
        None
    } else {
        let t = rustix::termios::tcgetattr(&stdin).context("read terminal settings")?;
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("turn off echo")?;
        Some(t)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &t);
        writeln!(stderr)?;
    }
    read.context("read from terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// `docker logout`.
fn logout(server: Option<&str>) -> Result<i32> {
    let registry = server_name(server);
    let store = CredentialStore::new(CredentialStore::default_path());
    match store.erase(&registry) {
        Ok(()) => println!("Removing login credentials for {registry}"),
        Err(image::registry::CredentialError::NotLoggedIn { .. }) => {
            println!("Not logged in to {registry}");
        }
        Err(e) => return Err(e).with_context(|| format!("remove credentials for {registry}")),
    }
    Ok(0)
}

/// Docker-style progress: one line per blob. On a terminal the lines are redrawn in place
/// with a bar; otherwise each state change is one plain line.
struct Progress {
    inner: Mutex<ProgressState>,
    tty: bool,
    quiet: bool,
}

struct ProgressState {
    out: Box<dyn Write + Send>,
    /// When each blob's transfer started (for the rate).
    started: HashMap<String, std::time::Instant>,
    /// Blob short ids in the order first seen, and their last text.
    rows: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

fn short(d: &image::Digest) -> String {
    d.hex().chars().take(12).collect()
}

fn human(bytes: u64) -> String {
    engine::human_size(i64::try_from(bytes).unwrap_or(i64::MAX))
}

fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(0)
        .min(WIDTH);
    let mut b = String::from("[");
    for i in 0..WIDTH {
        b.push(if i + 1 < filled {
            '='
        } else if i + 1 == filled {
            '>'
        } else {
            ' '
        });
    }
    b.push(']');
    format!("{b} {:>8}/{}", human(current), human(total))
}

impl Progress {
    fn new(out: Box<dyn Write + Send>, tty: bool, quiet: bool) -> Progress {
        Progress {
            inner: Mutex::new(ProgressState {
                out,
                rows: Vec::new(),
                index: HashMap::new(),
                started: HashMap::new(),
            }),
            tty,
            quiet,
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if let Ok(mut s) = self.inner.lock() {
            let _ = writeln!(s.out, "{text}");
            // Later rows are drawn below this line.
            s.rows.clear();
            s.index.clear();
            let _ = s.out.flush();
        }
    }

    fn row(&self, id: String, status: &str, detail: Option<String>) {
        if self.quiet {
            return;
        }
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        let text = match (&detail, self.tty) {
            (Some(d), true) => format!("{id}: {status} {d}"),
            _ => format!("{id}: {status}"),
        };
        let s = &mut *s;
        match s.index.get(&id).copied() {
            None => {
                s.index.insert(id.clone(), s.rows.len());
                s.rows.push((id, text.clone()));
                let _ = writeln!(s.out, "{text}");
            }
            Some(i) => {
                if s.rows[i].1 == text {
                    return;
                }
                s.rows[i].1.clone_from(&text);
                if self.tty {
                    let up = s.rows.len() - i;
                    let _ = write!(s.out, "\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r");
                } else if detail.is_none() {
                    let _ = writeln!(s.out, "{text}");
                }
            }
        }
        let _ = s.out.flush();
    }

    /// The bar with the transfer's average rate so far.
    fn bar_with_rate(&self, id: &str, current: u64, total: u64) -> String {
        let elapsed = self.inner.lock().ok().map(|mut s| {
            s.started
                .entry(id.to_owned())
                .or_insert_with(std::time::Instant::now)
                .elapsed()
        });
        let rate = elapsed
            .map(|e| e.as_secs_f64())
            .filter(|s| *s > 0.05)
            .map(|s| format!(" {}/s", human((current as f64 / s) as u64)))
            .unwrap_or_default();
        format!("{}{rate}", bar(current, total))
    }

    fn layer(&self, p: &LayerProgress) {
        let id = short(&p.layer);
        match p.state {
            LayerState::Exists => self.row(id, "Already exists", None),
            LayerState::Waiting => self.row(id, "Waiting", None),
            LayerState::Downloading if p.current == 0 => {
                let _ = self.bar_with_rate(&id, 0, p.total);
                self.row(id, "Pulling fs layer", None);
            }
            LayerState::Downloading => {
                let detail = self.bar_with_rate(&id, p.current, p.total);
                self.row(id, "Downloading", Some(detail));
            }
            LayerState::Verifying => self.row(id, "Verifying Checksum", None),
            LayerState::Extracting => self.row(id, "Extracting", None),
            LayerState::Complete => self.row(id, "Pull complete", None),
            LayerState::Retrying { seconds } => {
                self.row(id, &format!("Retrying in {seconds} second(s)"), None);
            }
        }
    }

    fn push(&self, p: &PushProgress) {
        let id = short(&p.blob);
        match &p.state {
            PushState::Waiting => self.row(id, "Preparing", None),
            PushState::Pushing if p.current == 0 => {
                let _ = self.bar_with_rate(&id, 0, p.total);
                self.row(id, "Pushing", None);
            }
            PushState::Pushing => {
                let detail = self.bar_with_rate(&id, p.current, p.total);
                self.row(id, "Pushing", Some(detail));
            }
            PushState::Pushed => self.row(id, "Pushed", None),
            PushState::Exists => self.row(id, "Layer already exists", None),
            PushState::Mounted { from } => self.row(id, &format!("Mounted from {from}"), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_reduced_to_their_host() {
        assert_eq!(server_name(None), "docker.io");
        assert_eq!(
            server_name(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(
            server_name(Some("http://localhost:5000/v2/")),
            "localhost:5000"
        );
        assert_eq!(server_name(Some("quay.io")), "quay.io");
    }

    #[test]
    fn bars_fill_with_progress() {
        let b = bar(50, 100);
        assert!(b.starts_with("[========================>"), "{b}");
        assert!(bar(0, 0).starts_with("[ "));
        assert!(bar(100, 100).contains("=>]"));
    }
}
