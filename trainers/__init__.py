"""absl command-line programs: parse flags -> config -> call tfp_vae."""
