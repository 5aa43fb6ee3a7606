//! `--emit-sam`: the same deployment as an AWS SAM template, for teams that deploy with
//! SAM/CloudFormation: the function, `AutoPublishAlias` (the version + alias), its endpoint (a
//! Function URL, or an HTTP API with `--http-api`), the policies its model store needs,
//! tracing, concurrency, a canary as a CodeDeploy deployment preference, and `Outputs`.
//!
//! Written as JSON, which CloudFormation, SAM and cfn-lint read as they read YAML (JSON is
//! YAML), so no YAML is written by hand.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::config::{Settings, Tracing, UrlSettings};

/// The function's logical id; SAM names what it generates after it (`FunctionAliaslive`,
/// `FunctionUrl`, `ServerlessHttpApi`).
const FUNCTION: &str = "Function";

/// Which endpoint the template puts in front of the function.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    None,
    Url(UrlSettings),
    HttpApi,
}

/// Where the template's code is.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    /// The zip's path, relative to the template when below it.
    Zip(String),
    /// A pushed image: `<repository uri>@sha256:<digest>`.
    Image(String),
}

pub fn template(
    s: &Settings,
    code: &Code,
    canary: Option<f64>,
    endpoint: &Endpoint,
) -> Result<String> {
    let mut props = Map::new();
    let mut put = |k: &str, v: Value| {
        props.insert(k.into(), v);
    };
    put("FunctionName", json!(s.function));
    match code {
        Code::Zip(path) => {
            put("CodeUri", json!(path));
            put("Runtime", json!("provided.al2023"));
            put("Handler", json!("bootstrap"));
        }
        // The image's config says what to run: no runtime, handler or CodeUri.
        Code::Image(uri) => {
            put("PackageType", json!("Image"));
            put("ImageUri", json!(uri));
        }
    }
    put("Architectures", json!([s.arch.lambda_name()]));
    put("MemorySize", json!(s.memory));
    put("Timeout", json!(s.timeout));
    put("AutoPublishAlias", json!(s.alias));
    if !s.environment.is_empty() {
        put("Environment", json!({"Variables": s.environment}));
    }
    if let Some(efs) = &s.efs {
        put(
            "FileSystemConfigs",
            json!([{"Arn": efs.access_point_arn, "LocalMountPath": efs.mount_path}]),
        );
    }
    if let Some(vpc) = &s.vpc {
        put(
            "VpcConfig",
            json!({"SubnetIds": vpc.subnet_ids, "SecurityGroupIds": vpc.security_group_ids}),
        );
    }
    if let Some(t) = s.tracing {
        put(
            "Tracing",
            json!(match t {
                Tracing::Active => "Active",
                Tracing::PassThrough => "PassThrough",
            }),
        );
    }
    if let Some(n) = s.reserved_concurrency {
        put("ReservedConcurrentExecutions", json!(n));
    }
    if let Some(n) = s.provisioned_concurrency {
        put(
            "ProvisionedConcurrencyConfig",
            json!({"ProvisionedConcurrentExecutions": n}),
        );
    }
    match &s.role {
        // SAM ignores Policies beside a Role: the role must carry them itself.
        Some(role) => put("Role", json!(role)),
        None => put("Policies", Value::Array(policies(s))),
    }
    let mut resources = Map::new();
    if let Some(w) = canary {
        let (preference, config) = deployment_preference(w)?;
        put("DeploymentPreference", preference);
        if let Some(config) = config {
            resources.insert("CanaryDeploymentConfig".into(), config);
        }
    }
    match endpoint {
        Endpoint::None => {}
        Endpoint::Url(url) => put("FunctionUrlConfig", function_url(url)),
        Endpoint::HttpApi => put(
            "Events",
            json!({"Api": {"Type": "HttpApi", "Properties": {"Method": "ANY", "Path": "/"}}}),
        ),
    }
    resources.insert(
        FUNCTION.into(),
        json!({"Type": "AWS::Serverless::Function", "Properties": props}),
    );
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "ONNX inference with the models compiled into bootstrap (written by cargo xtask deploy --emit-sam)",
        "Resources": resources,
        "Outputs": outputs(endpoint),
    });
    Ok(serde_json::to_string_pretty(&template)? + "\n")
}

/// What the execution role needs for the model store: S3 reads of `MODEL_S3_BUCKET`, and
/// with EFS the VPC access and the mount through the access point.
fn policies(s: &Settings) -> Vec<Value> {
    let mut policies = vec![json!("AWSLambdaBasicExecutionRole")];
    if let Some(bucket) = s.environment.get(inference_core::settings::MODEL_S3_BUCKET) {
        policies.push(json!({"S3ReadPolicy": {"BucketName": bucket}}));
    }
    if let Some(efs) = &s.efs {
        policies.push(json!("AWSLambdaVPCAccessExecutionRole"));
        policies.push(json!({"Statement": [{
            "Effect": "Allow",
            "Action": ["elasticfilesystem:ClientMount"],
            "Resource": "*",
            "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": efs.access_point_arn}}
        }]}));
    } else if s.vpc.is_some() {
        policies.push(json!("AWSLambdaVPCAccessExecutionRole"));
    }
    policies
}

/// CodeDeploy's canary for a traffic share `w`: its predefined 10% one, or a deployment
/// config of our own for another whole percentage. CodeDeploy shifts whole percents only.
fn deployment_preference(w: f64) -> Result<(Value, Option<Value>)> {
    let percent = w * 100.0;
    if (percent - percent.round()).abs() > 1e-9 {
        bail!(
            "--canary-weight {w} with --emit-sam: CodeDeploy canaries shift whole percentages, so {percent}% cannot be written; use {} or {}",
            percent.floor().max(1.0) / 100.0,
            percent.ceil().min(99.0) / 100.0
        );
    }
    let percent = percent.round() as i64;
    if percent == 10 {
        return Ok((json!({"Type": "Canary10Percent5Minutes"}), None));
    }
    // CodeDeploy moves the rest after the interval; `deploy` itself waits for --promote.
    let config = json!({
        "Type": "AWS::CodeDeploy::DeploymentConfig",
        "Properties": {
            "ComputePlatform": "Lambda",
            "TrafficRoutingConfig": {
                "Type": "TimeBasedCanary",
                "TimeBasedCanary": {"CanaryPercentage": percent, "CanaryInterval": 5}
            }
        }
    });
    Ok((
        json!({"Type": {"Ref": "CanaryDeploymentConfig"}}),
        Some(config),
    ))
}

fn function_url(url: &UrlSettings) -> Value {
    let mut config = json!({"AuthType": if url.public { "NONE" } else { "AWS_IAM" }});
    if !url.cors_origins.is_empty() {
        config["Cors"] = json!({
            "AllowOrigins": url.cors_origins,
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": super::url::CORS_HEADERS,
            "MaxAge": 600
        });
    }
    config
}

fn outputs(endpoint: &Endpoint) -> Value {
    let mut outputs = json!({
        "FunctionArn": {"Description": "the function", "Value": {"Fn::GetAtt": [FUNCTION, "Arn"]}},
        "AliasArn": {"Description": "the alias each deploy moves", "Value": {"Ref": format!("{FUNCTION}.Alias")}},
    });
    match endpoint {
        Endpoint::None => {}
        Endpoint::Url(_) => {
            outputs["Url"] = json!({
                "Description": "the Function URL on the alias",
                "Value": {"Fn::GetAtt": [format!("{FUNCTION}Url"), "FunctionUrl"]}
            });
        }
        Endpoint::HttpApi => {
            outputs["Url"] = json!({
                "Description": "the HTTP API in front of the alias",
                "Value": {"Fn::Sub": "https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}
            });
        }
    }
    outputs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_weights_become_codedeploy_canaries_or_say_why_not() {
        let (p, config) = deployment_preference(0.1).unwrap();
        assert_eq!(p["Type"], "Canary10Percent5Minutes");
        assert!(config.is_none());
        let (p, config) = deployment_preference(0.05).unwrap();
        assert_eq!(p["Type"]["Ref"], "CanaryDeploymentConfig");
        let config = config.unwrap();
        assert_eq!(
            config["Properties"]["TrafficRoutingConfig"]["TimeBasedCanary"]["CanaryPercentage"],
            5
        );
        let e = deployment_preference(0.125).unwrap_err().to_string();
        assert!(e.contains("whole percentages") && e.contains("0.12"), "{e}");
    }
}
