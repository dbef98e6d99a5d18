"""crmhost plugin for HubSpot."""
