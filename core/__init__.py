"""Distillery's library: teacher → static student, with no Gradio and no huey.

Data flows one way: recipe → corpus (`corpus`) → teacher targets and student (`methods`, through
`encoders`) → evaluation (`evaluation`) → the model folder (`artifact`); `serving` is what a finished
model does (search, compare, timing). `pipeline.run_recipe` chains the stages, `recipe` describes
one run, `progress` reports and times stages, `files` writes atomically and hashes, `settings` reads
the environment, `errors` holds the messages meant for users. docs/design.md has the map.
"""
