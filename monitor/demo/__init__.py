"""The embedded demo and its helpers (`driftmon demo`, `simulate`, `drill`).

Beside the pipeline, never inside it: `services` starts an in-process Kafka (librdkafka's
mock cluster) and a private redis-server, `traffic` puts `monitor.simulate` events on a
topic, `tracker` watches the state documents and the alert log for the incidents, `view`
renders them with rich, and `session` wires everything around `monitor.app.run`.
"""
