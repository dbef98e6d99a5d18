"""crmhost-salesforce: the Salesforce plugin for crmhost (``crmhost_salesforce.plugin``) and its sandbox."""
