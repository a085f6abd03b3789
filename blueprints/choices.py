from django.db import models


class BlueprintState(models.TextChoices):
    TESTING = "testing", "Testing (admins only)"
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class AccessRuleKind(models.TextChoices):
    EMAIL = "email", "E-mail address"
    DOMAIN = "domain", "E-mail domain"


class AIProviderKind(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic"
    OPENAI = "openai", "OpenAI"
    CUSTOM = "custom", "Custom (OpenAI-compatible)"


class AnthropicAuthMode(models.TextChoices):
    API_KEY = "api_key", "API key"
    USER_OAUTH = "user_oauth", "Each user signs in (OAuth)"


class TabKind(models.TextChoices):
    TERMINAL = "terminal", "Terminal"
    CHAT = "chat", "AI chat (OpenCode)"
    CLAUDE = "claude", "Claude Code"
    COMMAND = "command", "Custom command"
    FILES = "files", "Files"


class Network(models.TextChoices):
    OUTBOUND = "outbound", "Internet (not the host, the portal or other workspaces)"
    NONE = "none", "None (loopback only)"


class DataSourceKind(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL"
    SNOWFLAKE = "snowflake", "Snowflake"
    BIGQUERY = "bigquery", "BigQuery"
    REDSHIFT = "redshift", "Redshift"
    DATABRICKS = "databricks", "Databricks"
    MONGODB = "mongodb", "MongoDB"
    REST_API = "rest_api", "REST API"
    OTHER = "other", "Other"
