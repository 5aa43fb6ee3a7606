//! `--emit-sam`: the same function as an AWS SAM template, for teams that deploy with
//! SAM/CloudFormation. `AutoPublishAlias` gives the version + alias, and a canary weight
//! becomes a CodeDeploy canary deployment preference.

use super::config::Settings;

fn quoted(s: &str) -> String {
    // JSON strings are valid YAML scalars, and escaping is then never a question.
    serde_json::to_string(s).unwrap_or_default()
}

pub fn template(s: &Settings, code_uri: &str, canary: Option<f64>) -> String {
    let mut out = String::new();
    out.push_str("AWSTemplateFormatVersion: \"2010-09-09\"\n");
    out.push_str("Transform: AWS::Serverless-2016-10-31\n");
    out.push_str("Description: ONNX inference with the models compiled into bootstrap (written by cargo xtask deploy --emit-sam)\n");
    out.push_str("Resources:\n  Function:\n    Type: AWS::Serverless::Function\n    Properties:\n");
    let prop = |out: &mut String, k: &str, v: String| out.push_str(&format!("      {k}: {v}\n"));
    prop(&mut out, "FunctionName", quoted(&s.function));
    prop(&mut out, "CodeUri", quoted(code_uri));
    prop(&mut out, "Runtime", "provided.al2023".into());
    prop(&mut out, "Handler", "bootstrap".into());
    prop(
        &mut out,
        "Architectures",
        format!("[{}]", s.arch.lambda_name()),
    );
    prop(&mut out, "MemorySize", s.memory.to_string());
    prop(&mut out, "Timeout", s.timeout.to_string());
    if let Some(role) = &s.role {
        prop(&mut out, "Role", quoted(role));
    }
    prop(&mut out, "AutoPublishAlias", quoted(&s.alias));
    if let Some(w) = canary {
        // CodeDeploy's predefined Lambda canaries all shift 10% first.
        out.push_str(&format!(
            "      DeploymentPreference:\n        # --canary-weight {w}; CodeDeploy's predefined canaries start at 10%\n        Type: Canary10Percent5Minutes\n"
        ));
    }
    if !s.environment.is_empty() {
        out.push_str("      Environment:\n        Variables:\n");
        for (k, v) in &s.environment {
            out.push_str(&format!("          {k}: {}\n", quoted(v)));
        }
    }
    if let Some(efs) = &s.efs {
        out.push_str(&format!(
            "      FileSystemConfigs:\n        - Arn: {}\n          LocalMountPath: {}\n",
            quoted(&efs.access_point_arn),
            quoted(&efs.mount_path)
        ));
    }
    if let Some(vpc) = &s.vpc {
        let list = |v: &[String]| v.iter().map(|x| quoted(x)).collect::<Vec<_>>().join(", ");
        out.push_str(&format!(
            "      VpcConfig:\n        SubnetIds: [{}]\n        SecurityGroupIds: [{}]\n",
            list(&vpc.subnet_ids),
            list(&vpc.security_group_ids)
        ));
    }
    out
}
