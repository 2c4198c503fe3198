#!/bin/sh
# The image's `tfp-vae-train` (its ENTRYPOINT), in front of the package's
# console script: flags (or nothing) train; anything else is a command, run
# as given.
#
# Kubernetes replaces an image's ENTRYPOINT with a container's `command`,
# but `docker run IMAGE CMD...` replaces only its CMD, and so does KFP's
# local DockerRunner (the component's command becomes docker's command).
# With this dispatcher the image serves both:
#   docker run IMAGE --model=vae --epochs=2      -> the trainer, these flags
#   docker run IMAGE tfp-vae-evaluate --model_dir=/runs/vae
#   docker run IMAGE sh -c '...'                  (what KFP runs locally)
#   TFJob args only / TrainJob command tfp-vae-train -> the trainer
case "${1-}" in
  '' | -*) exec /usr/local/libexec/tfp-vae/tfp-vae-train "$@" ;;
  *) exec "$@" ;;
esac
