use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The user and password the registry accepts: what moto's ECR `GetAuthorizationToken`
/// hands out for its default account (`AWS:<account>-auth-token`), so a push authenticates
/// with the token it got from ECR, end to end.
pub const USER: &str = "AWS";
pub const PASSWORD: &str = "123456789012-auth-token";
/// `USER:bcrypt(PASSWORD)` (cost 4: made once with Python's `crypt`; any bcrypt line for the
/// password does).
const HTPASSWD: &str = "AWS:$2b$04$WDwSlaMGYr7Yso9xzRjUSePAwyBGt.CLwIF7aBIsjKQSLB8sveNeS\n";

/// Debian's `docker-registry` (the reference distribution implementation) on its own
/// loopback port, with empty storage and htpasswd auth; its access log is kept.
pub struct RegistryServer {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    http: reqwest::blocking::Client,
}

impl RegistryServer {
    /// A registry taking [`USER`] and [`PASSWORD`]: ECR's token as moto hands it out.
    pub fn start() -> RegistryServer {
        RegistryServer::start_with_htpasswd(HTPASSWD)
    }

    /// A registry taking the users of `htpasswd` (`user:bcrypt-hash` lines) instead.
    pub fn start_with_htpasswd(htpasswd: &str) -> RegistryServer {
        let program = crate::fixture_path("DOCKER_REGISTRY");
        let dir = tempfile::tempdir().expect("a directory for the registry");
        let port = super::free_port();
        let address = format!("127.0.0.1:{port}");
        std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
        std::fs::create_dir(dir.path().join("storage")).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\nauth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n",
            storage = dir.path().join("storage").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        // distribution writes its access log (combined format) to stdout, the rest to stderr.
        let access = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let errors = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(&program)
            .arg("serve")
            .arg(&config_path)
            .stdout(access)
            .stderr(errors)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let server = RegistryServer {
            child,
            dir,
            url: format!("http://{address}"),
            address,
            http: reqwest::blocking::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // 401 without credentials: it is up, and auth is on.
            let status = server
                .http
                .get(format!("{}/v2/", server.url))
                .send()
                .map(|r| r.status().as_u16());
            if status.as_ref().is_ok_and(|s| *s == 401) {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not come up on {}: {status:?}\n{}",
                server.address,
                server.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A GET with the registry's credentials (`/v2/...`).
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .header(
                "accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .expect("the registry answers")
    }

    /// Everything it logged: its own messages, then the access log.
    pub fn log(&self) -> Vec<String> {
        ["registry.log", "access.log"]
            .iter()
            .flat_map(|f| self.lines(f))
            .collect()
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The access log's requests, as `"METHOD /path"` with the status
    /// (`"HEAD /v2/r/blobs/sha256:… 200"`).
    pub fn requests(&self) -> Vec<String> {
        self.lines("access.log")
            .iter()
            .filter_map(|line| {
                // Combined log format: `… "METHOD PATH HTTP/1.1" STATUS …`.
                let (_, rest) = line.split_once('"')?;
                let (request, after) = rest.split_once('"')?;
                let mut parts = request.split_whitespace();
                let method = parts.next()?;
                let path = parts.next()?;
                let status = after.split_whitespace().next()?;
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
