"""The Slack face of the pipeline: Block Kit builders, the Bolt app and its listeners."""
