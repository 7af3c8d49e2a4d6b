"""Pipeline steps for xray-laterality: one module per DVC stage plus shared helpers."""
