"""The gateway's routes, a mixin class per resource. GatewayService (gateway/service.py) inherits them all,
and Nameko finds their entrypoints through inheritance. Each handler relies on the service's
dependencies: `config`, `auth`, and the RPC proxies `orgs`, `members`, `credits`, `audit`."""
