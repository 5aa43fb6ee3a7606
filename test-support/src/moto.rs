use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server on its own loopback port, empty at start.
pub struct MotoServer {
    child: Child,
    /// Where the server writes what it records (moto's recorder, off until started).
    recording: tempfile::TempDir,
    pub endpoint: String,
    http: reqwest::blocking::Client,
}

/// Region and credentials the servers accept; moto checks no signatures.
pub const REGION: &str = "us-east-1";

impl MotoServer {
    pub fn start() -> MotoServer {
        let program = crate::fixture_path("MOTO_SERVER");
        let port = super::free_port();
        let recording = tempfile::tempdir().expect("a directory for moto's recording");
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env(
                "MOTO_RECORDER_FILEPATH",
                recording.path().join("requests.jsonl"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let server = MotoServer {
            child,
            recording,
            endpoint: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = server
                .http
                .get(format!("{}/moto-api/data.json", server.endpoint))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment an AWS SDK client needs to talk to this server.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Applies [`Self::aws_env`] to a command, clearing profile settings that could point
    /// it at a real account.
    pub fn configure(&self, cmd: &mut Command) {
        for var in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.aws_env());
    }

    // moto serves S3 path-style and checks no signatures, so plain HTTP requests do to set
    // up fixtures (the code under test talks to it through the AWS SDK). It does refuse
    // anonymous reads and overwrites, so requests carry SigV4-shaped credentials.
    fn s3(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.endpoint))
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=0"),
            )
    }

    pub fn create_bucket(&self, bucket: &str) {
        let r = self
            .s3(reqwest::Method::PUT, bucket)
            .send()
            .expect("create bucket");
        assert!(
            r.status().is_success(),
            "create bucket {bucket}: {}",
            r.status()
        );
    }

    /// An IAM role (moto's Lambda wants the execution role to exist); returns its ARN.
    pub fn create_role(&self, name: &str) -> String {
        let r = self
            .http
            .post(&self.endpoint)
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .form(&[
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#),
            ])
            .send()
            .expect("create role");
        assert!(
            r.status().is_success(),
            "create role {name}: {}",
            r.status()
        );
        let text = r.text().expect("create role body");
        let arn = text
            .split("<Arn>")
            .nth(1)
            .and_then(|rest| rest.split("</Arn>").next())
            .unwrap_or_else(|| panic!("no role ARN in {text}"));
        arn.to_string()
    }

    /// A Lambda API GET (e.g. `functions/f/aliases/live`), parsed; `None` on 404.
    pub fn lambda_get(&self, path: &str) -> Option<serde_json::Value> {
        self.lambda_get_at("2015-03-31", path)
    }

    /// A GET of a Lambda API under its own version prefix (`2021-10-31` for Function URLs,
    /// `2017-10-31` for reserved concurrency).
    pub fn lambda_get_at(&self, version: &str, path: &str) -> Option<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}/{version}/{path}", self.endpoint))
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/lambda/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .send()
            .expect("lambda get");
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        Some(r.json().expect("lambda JSON"))
    }

    pub fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let r = self
            .s3(reqwest::Method::PUT, &format!("{bucket}/{key}"))
            .body(body)
            .send()
            .expect("put object");
        assert!(
            r.status().is_success(),
            "put s3://{bucket}/{key}: {}",
            r.status()
        );
    }

    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let r = self
            .s3(reqwest::Method::GET, &format!("{bucket}/{key}"))
            .send()
            .expect("get object");
        r.status()
            .is_success()
            .then(|| r.bytes().expect("object body").to_vec())
    }

    /// Everything the server holds, as moto reports it (to check that nothing changed).
    pub fn state(&self) -> String {
        self.http
            .get(format!("{}/moto-api/data.json", self.endpoint))
            .send()
            .and_then(|r| r.text())
            .expect("moto state")
    }

    /// Starts moto's recorder: from now on every request it answers is kept, headers and all.
    pub fn start_recording(&self) {
        let r = self
            .http
            .post(format!(
                "{}/moto-api/recorder/start-recording",
                self.endpoint
            ))
            .send()
            .expect("moto recorder");
        assert!(r.status().is_success(), "start-recording: {}", r.status());
    }

    /// The requests recorded so far: `method`, `url`, `headers`, `body`.
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        let path = self.recording.path().join("requests.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
