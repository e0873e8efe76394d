"""Backend-neutral code generation: printers of scalar expressions, the optimizers (defined
once, their update rules in ``update_rules``' small language), the Jinja2 environment, and
the formulas ``symgen show`` prints.
Imports the compiler, never a backend."""
