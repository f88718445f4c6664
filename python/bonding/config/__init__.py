"""/etc/config/bonding → typed, frozen objects, validated once at load.

Every problem names the section, the option and the value, and says what to do.  Errors make the
whole file unusable (the daemon then keeps its last good config); warnings (an unknown option, a
device that does not exist yet) are reported and the rest is used.

The parts: ``values`` (str → value parsers, the cipher and key rules), ``model`` (the frozen
dataclasses and their defaults), ``problems`` (`Problem`, `Severity`, `ConfigError`),
``loading`` (UCI sections → `Config`: the option specs and the checks across options) and
``secrets`` (/etc/config/bonding_secrets → `Secrets`).  Everything is importable from here,
except ``secretsfile`` (bonding_secrets held against the config, pruned and written: it imports
the rest, so it is imported as ``bonding.config.secretsfile``).
"""

from bonding.config.loading import (
    _GLOBALS,
    _PATH,
    _SECTIONS,
    _SERVER,
    _USB,
    as_dict,
    from_sections,
    load,
    load_strict,
)
from bonding.config.model import (
    DEFAULT_BYPASS,
    DEFAULT_BYPASS6,
    FAILBACK,
    LOG_LEVELS,
    MAX_PATHS,
    PROXIES,
    Config,
    Globals,
    PathConfig,
    Server,
    Usb,
)
from bonding.config.problems import PACKAGE, ConfigError, Problem, Severity
from bonding.config.secrets import (
    SECRETS_PACKAGE,
    Secrets,
    invalid_server_name,
    key_shape_problem,
    load_secrets,
    secrets_from_sections,
    secrets_mode_problem,
)
from bonding.config.values import CIPHERS, SS2022_KEY_BYTES, global6, is_ipv4, key_problem

__all__ = [
    "CIPHERS",
    "DEFAULT_BYPASS",
    "DEFAULT_BYPASS6",
    "FAILBACK",
    "LOG_LEVELS",
    "MAX_PATHS",
    "PACKAGE",
    "PROXIES",
    "SECRETS_PACKAGE",
    "SS2022_KEY_BYTES",
    "_GLOBALS",
    "_PATH",
    "_SECTIONS",
    "_SERVER",
    "_USB",
    "Config",
    "ConfigError",
    "Globals",
    "PathConfig",
    "Problem",
    "Secrets",
    "Server",
    "Severity",
    "Usb",
    "as_dict",
    "from_sections",
    "global6",
    "invalid_server_name",
    "is_ipv4",
    "key_problem",
    "key_shape_problem",
    "load",
    "load_secrets",
    "load_strict",
    "secrets_from_sections",
    "secrets_mode_problem",
]
