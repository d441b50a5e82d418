//! The active model, swapped atomically when a newer valid version arrives, and the shadow
//! (challenger) model, if one is configured.

use std::sync::{Arc, RwLock};

use heart_model::{Model, ModelLoadError};
use heart_schemas::ModelVersion;

use crate::metrics::Metrics;

/// What happened to an offered model version.
#[derive(Debug)]
pub enum Offer {
    /// It is now the active model.
    Activated {
        /// Its version.
        version: i64,
    },
    /// It is the configured shadow version, now loaded beside the active model.
    Shadowed {
        /// Its version.
        version: i64,
    },
    /// Not for us, or not newer than the active one: nothing changed.
    Ignored {
        /// Why.
        why: &'static str,
    },
    /// It failed verification; the active model stays.
    Rejected(ModelLoadError),
}

/// Holds the active model. Readers take an `Arc` per batch, so a swap never pauses scoring and a
/// batch is always scored by exactly one version.
#[derive(Debug)]
pub struct ModelStore {
    name: String,
    pinned: Option<i64>,
    active: RwLock<Option<Arc<Model>>>,
    /// `--shadow-model-version`: never activated, scored beside the active model.
    shadow_version: Option<i64>,
    shadow: RwLock<Option<Arc<Model>>>,
    metrics: Metrics,
}

impl ModelStore {
    /// An empty store for model `name`, optionally pinned to one version.
    pub fn new(name: String, pinned: Option<i64>, metrics: Metrics) -> Self {
        Self {
            name,
            pinned,
            active: RwLock::new(None),
            shadow_version: None,
            shadow: RwLock::new(None),
            metrics,
        }
    }

    /// The store with `version` as its shadow: loaded into the shadow slot, never activated.
    #[must_use]
    pub fn with_shadow(mut self, version: Option<i64>) -> Self {
        self.shadow_version = version;
        self
    }

    /// The shadow model, once its version has been published and verified.
    pub fn shadow(&self) -> Option<Arc<Model>> {
        self.shadow
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Puts `model` in the shadow slot, or empties it: for a challenger that does not come from
    /// the models topic (`--shadow-from-mlflow`).
    pub fn set_shadow(&self, model: Option<Model>) {
        self.metrics
            .shadow_model_version
            .set(model.as_ref().map_or(0, Model::version_number));
        *self.shadow.write().unwrap_or_else(|p| p.into_inner()) = model.map(Arc::new);
    }

    /// The active model, if any.
    pub fn current(&self) -> Option<Arc<Model>> {
        self.active
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Whether `version` would be considered at all (right name, allowed by the pin, newer).
    pub fn wants(&self, version: &ModelVersion) -> Result<(), &'static str> {
        if version.name != self.name {
            return Err("another model's name");
        }
        if self.shadow_version == Some(version.version) {
            return match self.shadow() {
                Some(_) => Err("the shadow version, already loaded"),
                None => Ok(()),
            };
        }
        if self.pinned.is_some_and(|p| p != version.version) {
            return Err("not the pinned version");
        }
        if self
            .current()
            .is_some_and(|m| m.version_number() >= version.version)
        {
            return Err("not newer than the active version");
        }
        Ok(())
    }

    /// Verifies `version` and activates it if it is wanted and valid.
    pub fn offer(&self, version: ModelVersion) -> Offer {
        if let Err(why) = self.wants(&version) {
            return Offer::Ignored { why };
        }
        let number = version.version;
        match Model::load(version) {
            Ok(model) if self.shadow_version == Some(number) => {
                *self.shadow.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(model));
                self.metrics.shadow_model_version.set(number);
                Offer::Shadowed { version: number }
            }
            Ok(model) => {
                self.activate(model);
                Offer::Activated { version: number }
            }
            Err(err) => {
                self.metrics
                    .model_swaps
                    .with_label_values(&["rejected"])
                    .inc();
                Offer::Rejected(err)
            }
        }
    }

    fn activate(&self, model: Model) {
        let model = Arc::new(model);
        let previous = {
            let mut guard = self.active.write().unwrap_or_else(|p| p.into_inner());
            guard.replace(Arc::clone(&model))
        };
        if let Some(old) = previous {
            let _ = self
                .metrics
                .model_info
                .remove_label_values(&[old.name(), &old.version_number().to_string()]);
        }
        self.metrics
            .model_info
            .with_label_values(&[model.name(), &model.version_number().to_string()])
            .set(1);
        self.metrics.model_version.set(model.version_number());
        self.metrics.model_active.set(1);
        self.metrics
            .model_swaps
            .with_label_values(&["activated"])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::tests::model;

    fn store(pinned: Option<i64>) -> ModelStore {
        ModelStore::new("heart-disease".into(), pinned, Metrics::new().unwrap())
    }

    #[test]
    fn newer_versions_replace_older_ones_only() {
        let s = store(None);
        assert!(matches!(
            s.offer(model(2, 1.0).version),
            Offer::Activated { version: 2 }
        ));
        assert!(matches!(
            s.offer(model(1, 1.0).version),
            Offer::Ignored { .. }
        ));
        assert!(matches!(
            s.offer(model(2, 1.0).version),
            Offer::Ignored { .. }
        ));
        assert!(matches!(
            s.offer(model(3, 1.0).version),
            Offer::Activated { version: 3 }
        ));
        assert_eq!(s.current().unwrap().version_number(), 3);
        assert_eq!(s.metrics.model_version.get(), 3);
        let text = s.metrics.render();
        assert!(text.contains("scorer_model_info{name=\"heart-disease\",version=\"3\"} 1"));
        assert!(!text.contains("version=\"2\""), "old info series removed");
    }

    #[test]
    fn a_corrupt_version_is_rejected_and_the_active_one_stays() {
        let s = store(None);
        s.offer(model(1, 1.0).version);
        let mut bad = model(2, 1.0).version;
        bad.payload[3] ^= 0xFF;
        assert!(matches!(
            s.offer(bad),
            Offer::Rejected(ModelLoadError::ChecksumMismatch { .. })
        ));
        assert_eq!(s.current().unwrap().version_number(), 1);
        assert_eq!(
            s.metrics.model_swaps.with_label_values(&["rejected"]).get(),
            1
        );
    }

    #[test]
    fn the_shadow_version_goes_to_its_slot_and_is_never_activated() {
        let s = store(None).with_shadow(Some(4));
        assert!(matches!(
            s.offer(model(4, 1.0).version),
            Offer::Shadowed { version: 4 }
        ));
        assert!(s.current().is_none(), "a shadow is not the active model");
        assert!(matches!(
            s.offer(model(3, 1.0).version),
            Offer::Activated { version: 3 }
        ));
        assert!(matches!(
            s.offer(model(4, 1.0).version),
            Offer::Ignored {
                why: "the shadow version, already loaded"
            }
        ));
        assert_eq!(s.current().unwrap().version_number(), 3);
        assert_eq!(s.shadow().unwrap().version_number(), 4);
        assert_eq!(s.metrics.shadow_model_version.get(), 4);
        // Promotion: the challenger published again, as a newer version, becomes active.
        assert!(matches!(
            s.offer(model(5, 1.0).version),
            Offer::Activated { version: 5 }
        ));
    }

    #[test]
    fn pin_and_name_filter_versions() {
        let s = store(Some(2));
        assert!(matches!(
            s.offer(model(3, 1.0).version),
            Offer::Ignored { .. }
        ));
        assert!(matches!(
            s.offer(model(2, 1.0).version),
            Offer::Activated { .. }
        ));
        let mut other = model(5, 1.0).version;
        other.name = "other".into();
        assert!(matches!(
            s.offer(other),
            Offer::Ignored {
                why: "another model's name"
            }
        ));
    }
}
