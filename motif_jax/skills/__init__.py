"""MaestroMotif's skills: the skills file, the read-only view skill code reads, the loader of skill and
policy code, and the per-env controller that runs the policy over skills inside the env loop."""
