use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cgroup::{Cgroup, Limits};
use crate::sandbox::Sandbox;
use crate::{EmulatorError, Outcome, RuntimeApi};

/// How to start the function process.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub bootstrap: PathBuf,
    /// Arguments for the program (a Python runtime client takes its handler here).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Print the function's log lines as they come (for `cargo xtask local`).
    pub echo_logs: bool,
    pub memory_mb: u32,
    /// Run under what Lambda gives `memory_mb` (a cgroup: CPU share and memory limit, see
    /// [`Limits::lambda`]); off, the process has the whole machine (the benchmarks' side by
    /// side comparisons).
    pub lambda_limits: bool,
    /// Pin the process to these CPUs (`taskset -c`, e.g. `"0"`): a Lambda function below
    /// 1,769 MB has one vCPU, and a second core hides work done on side threads.
    pub cpus: Option<String>,
    /// Run from an unpacked container image (`bootstrap` is then the entrypoint's path
    /// inside it): see [`crate::image`].
    pub image: Option<ImageRoot>,
    /// Start each process as a fresh sandbox is charged: the program's pages dropped from
    /// the page cache first, so its cgroup pays for reading them, as Lambda's Max Memory
    /// Used counts them (otherwise they stay charged to whichever process read them first).
    pub fresh_page_cache: bool,
}

/// An unpacked image the function runs in, as [`FunctionConfig::from_image`] reads it.
#[derive(Debug, Clone)]
pub struct ImageRoot {
    pub root: PathBuf,
    pub working_dir: String,
    /// The image config's `Env`, under the variables Lambda sets and the function's own.
    pub env: Vec<(String, String)>,
    /// `/tmp` size (Lambda's ephemeral storage: 512 MB unless configured up to 10,240).
    pub tmp_mb: u32,
}

impl FunctionConfig {
    pub fn new(bootstrap: impl AsRef<Path>) -> Self {
        FunctionConfig {
            bootstrap: bootstrap.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            echo_logs: false,
            memory_mb: 1024,
            lambda_limits: true,
            cpus: None,
            image: None,
            fresh_page_cache: false,
        }
    }

    /// The function of the image unpacked at `root` (see [`crate::image::unpack`]): its
    /// entrypoint and command, working directory and environment as its config says.
    pub fn from_image(
        root: impl AsRef<Path>,
        config: &crate::image::spec::ImageConfig,
    ) -> Result<Self, crate::image::ImageError> {
        let run = &config.config;
        let mut argv = run.entrypoint.iter().chain(&run.cmd);
        let program = argv.next().filter(|p| p.starts_with('/')).ok_or_else(|| {
            crate::image::ImageError::Invalid(
                "the image config has no absolute Entrypoint (Lambda starts ENTRYPOINT, then CMD)"
                    .into(),
            )
        })?;
        let env = run
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(crate::image::ImageError::Invalid(format!(
                    "image Env entry {kv:?} is not KEY=VALUE"
                ))),
            })
            .collect::<Result<_, _>>()?;
        let mut f = FunctionConfig::new(program);
        f.args = argv.cloned().collect();
        f.image = Some(ImageRoot {
            root: root.as_ref().to_path_buf(),
            working_dir: run.working_dir.clone(),
            env,
            tmp_mb: 512,
        });
        Ok(f)
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn memory_mb(mut self, memory_mb: u32) -> Self {
        self.memory_mb = memory_mb;
        self
    }

    pub fn lambda_limits(mut self, on: bool) -> Self {
        self.lambda_limits = on;
        self
    }
}

/// A real `bootstrap` process polling its own [`RuntimeApi`], as one Lambda execution
/// environment: an invocation that kills it (out of memory, a crash) or outlives its timeout
/// is answered as Lambda answers it, and the next one starts a new process (Lambda's
/// re-initialisation). Killed on drop.
pub struct Function {
    pub api: RuntimeApi,
    config: FunctionConfig,
    process: tokio::sync::Mutex<Process>,
    logs: Arc<Mutex<Vec<String>>>,
}

/// One process of the function, and the cgroup holding it to Lambda's limits.
struct Process {
    child: Child,
    /// Dropped after the child: its drop ends whatever is left and removes the cgroup.
    cgroup: Option<Cgroup>,
}

impl Function {
    /// Starts a Runtime API and the process against it, with the variables Lambda sets.
    pub async fn start(config: FunctionConfig) -> Result<Self, EmulatorError> {
        let api = RuntimeApi::start().await?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let process = spawn(&config, &api, &logs)?;
        Ok(Function {
            api,
            config,
            process: tokio::sync::Mutex::new(process),
            logs,
        })
    }

    /// One invocation. The process exiting is answered as Lambda answers it
    /// (`Runtime.OutOfMemory`, `Runtime.ExitError`), unless it reported an init error.
    pub async fn invoke(
        &self,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, EmulatorError> {
        let ids = crate::runtime_api::Ids::new();
        self.invoke_as(&ids.request_id, &ids.trace_id, payload, timeout)
            .await
    }

    /// [`Function::invoke`] with the request id and trace header Lambda would send.
    pub async fn invoke_as(
        &self,
        request_id: &str,
        trace_id: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, EmulatorError> {
        let payload = payload.into();
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(EmulatorError::RequestTooLarge(payload.len()));
        }
        let mut process = self.process.lock().await;
        // The last invocation ended the process: this one initialises a new one.
        if !matches!(process.child.try_wait(), Ok(None)) {
            self.api.clear_init_error();
            *process = spawn(&self.config, &self.api, &self.logs)?;
        }
        let invoke = self.api.invoke_as(request_id, trace_id, payload, timeout);
        let ended = tokio::select! {
            r = invoke => Ended::Answered(r),
            status = process.child.wait() => Ended::Exited(status),
        };
        let status = match ended {
            Ended::Answered(Err(EmulatorError::Timeout(_))) => {
                // Lambda stops the environment of a timed-out invocation.
                let _ = process.child.kill().await;
                return Ok(function_error(
                    "Sandbox.Timedout",
                    request_id,
                    &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                ));
            }
            Ended::Answered(r) => return r,
            Ended::Exited(status) => status,
        };
        // Give an init error posted just before exit the chance to be the answer.
        if let Some(e) = self.api.wait_init_error(Duration::from_millis(200)).await {
            return Err(EmulatorError::Init(e));
        }
        let status = status?;
        let out_of_memory = process.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0);
        let error_type = if out_of_memory {
            "Runtime.OutOfMemory"
        } else {
            "Runtime.ExitError"
        };
        if self.config.echo_logs {
            eprintln!("the function's process ended ({error_type}, {}); the next request starts a new one", exit_text(&status));
        }
        Ok(function_error(
            error_type,
            request_id,
            &format!("Runtime exited with error: {}", exit_text(&status)),
        ))
    }

    /// Waits for the process to exit (after an init error, say).
    pub async fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut process = self.process.lock().await;
        tokio::time::timeout(timeout, process.child.wait())
            .await
            .ok()?
            .ok()
    }

    /// The process id, for measuring it (RSS) from outside.
    pub async fn pid(&self) -> Option<u32> {
        self.process.lock().await.child.id()
    }

    /// The process's peak resident memory so far (`VmHWM` in `/proc/<pid>/status`), in KiB;
    /// `None` once it has exited.
    pub async fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:").await
    }

    /// The process's resident anonymous memory (`RssAnon`) in KiB: what the kernel cannot
    /// reclaim, unlike the pages of the binary it maps.
    pub async fn resident_anon_kib(&self) -> Option<u64> {
        self.status_kib("RssAnon:").await
    }

    /// One `… kB` field of `/proc/<pid>/status`.
    async fn status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.pid().await?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The most memory the current process's cgroup has held (Lambda's "Max Memory Used"),
    /// in bytes; `None` when it runs without limits.
    pub async fn max_memory_used(&self) -> Option<u64> {
        self.process
            .lock()
            .await
            .cgroup
            .as_ref()?
            .peak_memory_bytes()
    }

    /// Whether the process runs under Lambda's limits (a cgroup could be made).
    pub async fn limited(&self) -> bool {
        self.process.lock().await.cgroup.is_some()
    }

    /// Every log line the process has written so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn kill(&self) {
        let _ = self.process.lock().await.child.kill().await;
    }
}

/// How an invocation's wait ended.
enum Ended {
    Answered(Result<Outcome, EmulatorError>),
    Exited(std::io::Result<std::process::ExitStatus>),
}

/// Lambda's synchronous limit on a request and on a response, each.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The error document Lambda returns for an invocation the function did not answer.
fn function_error(error_type: &str, request_id: &str, message: &str) -> Outcome {
    let body = serde_json::json!({
        "errorType": error_type,
        "errorMessage": format!("RequestId: {request_id} Error: {message}"),
    });
    Outcome::Error {
        error_type: Some(error_type.to_string()),
        body: body.to_string().into(),
    }
}

/// How Lambda words a process's end: `signal: killed`, `exit status 1`.
fn exit_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(libc::SIGKILL)) => "signal: killed".into(),
        (None, Some(signal)) => format!("signal: {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The cgroup for a new process, or `None` (said once) where this machine cannot make one.
fn cgroup_for(config: &FunctionConfig) -> Option<Cgroup> {
    if !config.lambda_limits {
        return None;
    }
    match Cgroup::create(Limits::lambda(config.memory_mb)) {
        Ok(c) => Some(c),
        Err(e) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("warning: {e}"));
            None
        }
    }
}

/// Starts the process with the variables Lambda sets, inside its cgroup from its first
/// instruction.
fn spawn(
    config: &FunctionConfig,
    api: &RuntimeApi,
    logs: &Arc<Mutex<Vec<String>>>,
) -> Result<Process, EmulatorError> {
    // An image's process pins itself (in the sandbox: taskset is not inside the image).
    let sandbox = match &config.image {
        Some(image) => Some(Sandbox::new(
            &image.root,
            &image.working_dir,
            image.tmp_mb,
            config.cpus.as_deref(),
        )?),
        None => None,
    };
    if config.fresh_page_cache {
        let program = match &config.image {
            Some(image) => image.root.join(
                config
                    .bootstrap
                    .strip_prefix("/")
                    .unwrap_or(&config.bootstrap),
            ),
            None => config.bootstrap.clone(),
        };
        evict_from_page_cache(&program)?;
    }
    let mut cmd = match &config.cpus {
        _ if sandbox.is_some() => Command::new(&config.bootstrap),
        // taskset execs the program: the child's pid stays the function's.
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(cpus).arg(&config.bootstrap);
            cmd
        }
        None => Command::new(&config.bootstrap),
    };
    if let Some(image) = &config.image {
        // Lambda's environment is the image's and its own: nothing from this machine.
        cmd.env_clear();
        for (k, v) in &image.env {
            cmd.env(k, v);
        }
    }
    cmd.args(&config.args)
        .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
        .env("AWS_LAMBDA_FUNCTION_NAME", "local")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/local")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("LAMBDA_TASK_ROOT", "/var/task")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in &config.env {
        cmd.env(k, v);
    }
    let cgroup = cgroup_for(config);
    // Opened here: between fork and exec the child may only make system calls.
    let join = match &cgroup {
        Some(c) => c.join_files()?,
        None => Vec::new(),
    };
    let fds: Vec<RawFd> = join.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the hook only makes async-signal-safe system calls — write(2) on descriptors
    // that stay open until spawn returns, and the sandbox's, on strings made before the
    // fork —; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                // "0" in cgroup.procs: the writing process itself.
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(sandbox) = &sandbox {
                sandbox.enter()?;
            }
            Ok(())
        });
    }
    // ETXTBSY: a binary just written (a copy of bootstrap) can still be open for writing in
    // a child another thread forked but has not exec'd yet, which inherited the descriptor
    // (Linux's fork/exec race, golang/go#22315). That child execs or exits within
    // milliseconds, so the start is tried again.
    let mut attempt = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 * attempt));
            }
            other => {
                break other.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot start {}: {e}", config.bootstrap.display()),
                    )
                })?
            }
        }
    };
    drop(join);
    if let Some(out) = child.stdout.take() {
        collect(out, logs.clone(), config.echo_logs);
    }
    if let Some(err) = child.stderr.take() {
        collect(err, logs.clone(), config.echo_logs);
    }
    Ok(Process { child, cgroup })
}

/// Drops a file's clean pages from the page cache (`posix_fadvise(DONTNEED)`; pages a
/// running process maps stay), so the next process to read it is charged for them.
fn evict_from_page_cache(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
    })?;
    // SAFETY: a system call on a descriptor that stays open across it.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    reader: R,
    logs: Arc<Mutex<Vec<String>>>,
    echo: bool,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("{line}");
            }
            logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}
