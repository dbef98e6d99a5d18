"""crmhost plugin for Pipedrive."""
