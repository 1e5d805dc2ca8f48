"""A routing file as Stem writes and reads it: camelCase keys next to snake_case ones,
``priorityOverride``, a list of task globs, ``queueOverride``, ``meta``, ``bindings`` and
route ``options`` (shared by the unit, integration and CLI tests)."""

from __future__ import annotations

STEM_ROUTING = """\
defaultQueue:
  alias: default
  queue: primary
  fallbacks: [secondary]
queues:
  primary:
    exchange: jobs
    routingKey: jobs.default
    priorityRange: {min: 1, max: 5}
    bindings:
      - routingKey: jobs.#
        headers: {region: eu}
        weight: 2
    meta:
      owner: billing
      limits: {rate: 10}
  secondary: {}
  urgent:
    priority_range: [0, 9]
    meta: {tier: gold}
broadcasts:
  control:
    delivery: at-least-once
    durability: durable
    meta: {scope: fleet}
routes:
  - match:
      task: [reports.*, invoices.*]
    target: {type: queue, name: primary}
    priorityOverride: 7
  - match:
      task: "*"
      queueOverride: secondary
    target: {type: queue, name: urgent}
    priority_override: 8
    options: {note: promoted}
  - match: {task: control.*}
    target: {type: broadcast, name: control}
"""
