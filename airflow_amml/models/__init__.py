"""Model definitions in YAML (the AMML model language) and their Keras realisation.

``spec`` (imported here) needs only pyyaml: it runs in ``amml lint`` and at DAG parse. ``keras_builder``
imports TensorFlow lazily, inside its functions; import it explicitly where models are trained or used.
"""

from airflow_amml.models.spec import (
    AmmlModelError,
    EarlyStoppingSpec,
    LayerSpec,
    ModelSpec,
    TrainingSpec,
    find_model_files,
    load_model_spec,
    parse_model_spec,
)

__all__ = [
    "AmmlModelError",
    "EarlyStoppingSpec",
    "LayerSpec",
    "ModelSpec",
    "TrainingSpec",
    "find_model_files",
    "load_model_spec",
    "parse_model_spec",
]
