use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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
    /// Pin the process to these CPUs (`taskset -c`, e.g. `"0"`): a Lambda function below
    /// 1,769 MB has one vCPU, and a second core hides work done on side threads.
    pub cpus: Option<String>,
}

impl FunctionConfig {
    pub fn new(bootstrap: impl AsRef<Path>) -> Self {
        FunctionConfig {
            bootstrap: bootstrap.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            echo_logs: false,
            memory_mb: 1024,
            cpus: None,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }
}

/// A real `bootstrap` process polling its own [`RuntimeApi`]. Killed on drop.
pub struct Function {
    pub api: RuntimeApi,
    child: tokio::sync::Mutex<Child>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Function {
    /// Starts a Runtime API and the process against it, with the variables Lambda sets.
    pub async fn start(config: FunctionConfig) -> Result<Self, EmulatorError> {
        let api = RuntimeApi::start().await?;
        let mut cmd = match &config.cpus {
            // taskset execs the program: the child's pid stays the function's.
            Some(cpus) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpus).arg(&config.bootstrap);
                cmd
            }
            None => Command::new(&config.bootstrap),
        };
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
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {}: {e}", config.bootstrap.display()),
            )
        })?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, logs.clone(), config.echo_logs);
        }
        if let Some(err) = child.stderr.take() {
            collect(err, logs.clone(), config.echo_logs);
        }
        Ok(Function {
            api,
            child: tokio::sync::Mutex::new(child),
            logs,
        })
    }

    /// One invocation; fails fast if the process exits or reports an init error.
    pub async fn invoke(
        &self,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, EmulatorError> {
        self.until_exit(self.api.invoke(payload, timeout)).await
    }

    /// [`Function::invoke`] with the request id and trace header Lambda would send.
    pub async fn invoke_as(
        &self,
        request_id: &str,
        trace_id: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Outcome, EmulatorError> {
        self.until_exit(self.api.invoke_as(request_id, trace_id, payload, timeout))
            .await
    }

    async fn until_exit(
        &self,
        invoke: impl std::future::Future<Output = Result<Outcome, EmulatorError>>,
    ) -> Result<Outcome, EmulatorError> {
        let mut child = self.child.lock().await;
        tokio::select! {
            r = invoke => r,
            status = child.wait() => {
                // Give an init error posted just before exit the chance to be the answer.
                if let Some(e) = self.api.wait_init_error(Duration::from_millis(200)).await {
                    return Err(EmulatorError::Init(e));
                }
                Err(EmulatorError::Exited(match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                }))
            }
        }
    }

    /// Waits for the process to exit (after an init error, say).
    pub async fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().await;
        tokio::time::timeout(timeout, child.wait()).await.ok()?.ok()
    }

    /// The process id, for measuring it (RSS) from outside.
    pub async fn pid(&self) -> Option<u32> {
        self.child.lock().await.id()
    }

    /// The process's peak resident memory so far (`VmHWM` in `/proc/<pid>/status`), in KiB;
    /// `None` once it has exited.
    pub async fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.pid().await?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Every log line the process has written so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn kill(&self) {
        let _ = self.child.lock().await.kill().await;
    }
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
