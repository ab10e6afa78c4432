"""Shared code of the report "Does training on condensed data change robustness?".

Three layers, importing downwards only (README, Layout): method modules (condensation, dsa,
attacks, cw, distillation, backdoor, models, training, data) on top of runtime, validation,
progress and engine; the study layer (profiles, cache, versions, schemas, model_runs, the
`*_study` modules, stats); the notebook side (config, plotting, regenerate, report).
"""
