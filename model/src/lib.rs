//! The model artifact, and the one implementation of "apply an artifact to a patient" that the
//! trainer and the scorer share.
//!
//! ```text
//! trainer: fit Preprocessor + Estimator ─▶ Artifact ─▶ ModelVersion (payload + sha256)
//! scorer:  ModelVersion ─▶ Model::load (checksum, structure, golden vectors) ─▶ Model::predict
//! ```
//!
//! It is a crate of its own, not part of `heart-schemas`, because it is numeric code with its own
//! invariants and tests; `heart-schemas` stays a pure wire contract.
//!
//! # Layout
//! - [`preprocess`]: median/mode imputation, standardisation and one-hot encoding ([`Preprocessor`]).
//! - [`estimator`]: logistic regression and tree ensembles as plain data ([`Estimator`]), and
//!   Platt scaling of any of them ([`Platt`]).
//! - [`stumps`]: a boosted model of stumps tabulated as one step function per feature, which
//!   [`Model`] applies in place of the trees.
//! - [`profile`]: the training data's summary kept in the artifact ([`TrainingProfile`]): the
//!   reference distributions of drift and the expectations explanations start from.
//! - [`explain`]: each prediction's output as a base plus one contribution per field
//!   ([`Explanation`]).
//! - [`artifact`]: the serialized [`Artifact`] with its golden vectors, and its envelope.
//! - [`load`]: [`Model`], a verified artifact ready to score, and [`ModelLoadError`].

pub mod artifact;
pub mod estimator;
pub mod explain;
pub mod load;
pub mod preprocess;
pub mod profile;
pub mod stumps;

pub use artifact::{
    Algorithm, Artifact, GoldenVector, PAYLOAD_FORMAT_V1, PAYLOAD_FORMAT_V2, PAYLOAD_FORMAT_V3,
    PAYLOAD_FORMATS, sha256_hex,
};
pub use estimator::{Estimator, Node, Platt, Tree};
pub use explain::{ExplainError, Explanation};
pub use load::{Model, ModelLoadError, Scored};
pub use preprocess::{ColumnStep, Preprocessor};
pub use profile::{Bins, FieldProfile, TrainingProfile};
