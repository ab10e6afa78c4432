"""Shared code of the report "Does training on condensed data change robustness?".

One module per concern: config (paths, device, seeds), profiles (budgets), data,
models, training, cache, plotting, progress, regenerate (batch execution); the
studies add condensation, attacks, distillation and backdoor.
"""
