"""crmhost plugin for Zoho CRM (API v8) and its sandbox."""
