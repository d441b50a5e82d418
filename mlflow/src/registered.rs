//! Registered model versions as `trainer train` logs them: `models:/NAME@ALIAS` references and
//! the `ModelVersion` file among the logged model's artifacts. Both the trainer (`publish
//! --from-mlflow`) and the scorer (`score-file --from-mlflow`) read models this way.

use heart_schemas::AvroRecord as _;
use tracing::info;

use crate::client::{Client, ModelVersionInfo};
use crate::error::{ConfigError, MlflowError};

/// The name of the logged model within its run.
pub const MODEL_NAME: &str = "model";
/// The model file at the root of a logged model's artifacts: the Avro `ModelVersion` the Kafka
/// topic carries.
pub const MODEL_FILE: &str = "model.avro";

/// A `models:/NAME@ALIAS` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUri {
    /// The registered model.
    pub name: String,
    /// The alias on one of its versions.
    pub alias: String,
}

impl ModelUri {
    /// Splits `models:/NAME@ALIAS`.
    ///
    /// # Errors
    /// [`ConfigError::ModelUri`] if it is not of that form.
    pub fn parse(uri: &str) -> Result<Self, ConfigError> {
        uri.strip_prefix("models:/")
            .and_then(|rest| rest.split_once('@'))
            .filter(|(name, alias)| !name.is_empty() && !alias.is_empty() && !name.contains('/'))
            .map(|(name, alias)| Self {
                name: name.to_owned(),
                alias: alias.to_owned(),
            })
            .ok_or_else(|| ConfigError::ModelUri(uri.to_owned()))
    }
}

/// A registered model version and the `ModelVersion` in its `model.avro`.
#[derive(Debug)]
pub struct Registered {
    /// The MLflow model version (name, number, run).
    pub info: ModelVersionInfo,
    /// The envelope logged by `trainer train`, with the MLflow lineage filled in.
    pub version: heart_schemas::ModelVersion,
}

/// Resolves `models:/NAME@ALIAS` and downloads the version's model file.
///
/// # Errors
/// The reference is malformed, the alias does not exist, the download fails or the file is not
/// a `ModelVersion`.
pub fn fetch(client: &Client, uri: &str) -> Result<Registered, MlflowError> {
    let reference = ModelUri::parse(uri).map_err(|e| MlflowError::Decode {
        operation: "parse models uri",
        detail: e.to_string(),
    })?;
    let info = client.model_version_by_alias(&reference.name, &reference.alias)?;
    let root = client.source_artifact_uri(&info.source)?;
    let bytes = client.download_artifact(&root, MODEL_FILE)?;
    let version =
        heart_schemas::ModelVersion::decode(&bytes).map_err(|source| MlflowError::ModelFile {
            uri: uri.to_owned(),
            source,
        })?;
    info!(
        registered_model = %info.name,
        model_version = %info.version,
        run_id = %info.run_id,
        "mlflow model version fetched"
    );
    // The registry and the topic are one lineage: whatever serves this version names its source.
    let version = heart_schemas::ModelVersion {
        mlflow_run_id: Some(info.run_id.clone()),
        mlflow_model_version: info.version.parse().ok(),
        ..version
    };
    Ok(Registered { info, version })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn model_uris_need_a_name_and_an_alias() {
        assert_eq!(
            ModelUri::parse("models:/heart-disease@champion").unwrap(),
            ModelUri {
                name: "heart-disease".into(),
                alias: "champion".into()
            }
        );
        for bad in [
            "models:/heart-disease",
            "models:/@a",
            "models:/a@",
            "runs:/x@a",
            "models:/a/1@b",
        ] {
            assert_eq!(
                ModelUri::parse(bad),
                Err(ConfigError::ModelUri(bad.into())),
                "{bad}"
            );
        }
    }
}
