"""Backend-neutral code generation: printers of scalar expressions, the optimizers'
hyperparameters, the Jinja2 environment, and the formulas ``symgen show`` prints.
Imports the compiler, never a backend."""
