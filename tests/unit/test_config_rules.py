"""`config rule` sections (bonding.config.rules): parsing, the checks across sections, and the
messages a user gets."""

from __future__ import annotations

from bonding import config, uci
from bonding.config import Config, Problem, Severity
from bonding.config.rules import Rule

ERROR, WARNING = Severity.ERROR, Severity.WARNING
PATHS = ("config path 'wan1'\n\toption device 'wan1'\n"
         "config path 'wan2'\n\toption device 'wan2'\n")


def parse_text(text: str) -> tuple[Config, list[Problem]]:
    return config.from_sections(uci.loads(text, "bonding").sections)


def where(problems: list[Problem]) -> list[tuple[Severity, str, str | None, str | None]]:
    return [(p.severity, p.section, p.option, p.value) for p in problems]


def test_a_full_rule_and_its_defaults() -> None:
    cfg, problems = parse_text(PATHS + """
config rule 'tvbox'
	option src_mac 'AA:BB:CC:DD:EE:01'
	list dest_ip '198.51.100.0/24'
	option proto 'tcp'
	list dest_port '443'
	option path 'wan2'
	option fallback 'drop'
	option block_quic '1'

config rule
	option name 'voip'
	option src_ip '192.0.2.20'
	option action 'bypass'

config rule
	option dest_ip '203.0.113.7'
""")
    assert problems == []
    assert cfg.rules == (
        Rule(name="tvbox", src_mac=("aa:bb:cc:dd:ee:01",), dest_ip=("198.51.100.0/24",),
             proto="tcp", dest_port=("443",), action="path:wan2", fallback="drop",
             block_quic=True),
        Rule(name="voip", src_ip=("192.0.2.20",), action="bypass"),
        Rule(name="@rule[2]", dest_ip=("203.0.113.7",)),  # bond, fallback bond: the defaults
    )
    assert cfg.rules[0].path == "wan2"
    assert cfg.rules[1].path is None
    assert cfg.rules[0].match_text() == ("src_mac aa:bb:cc:dd:ee:01 dest_ip 198.51.100.0/24 "
                                         "proto tcp dest_port 443")
    assert Rule(name="all").match_text() == "all LAN traffic"


def test_an_unknown_path_is_an_error_naming_the_paths() -> None:
    _, problems = parse_text(PATHS + "config rule 'tv'\n\toption action 'path:wan3'\n")
    assert where(problems) == [(ERROR, "tv", "action", "path:wan3")]
    assert problems[0].message == "no path section 'wan3': use one of wan1, wan2"


def test_without_path_sections_the_path_is_checked_at_run_time() -> None:
    # the paths then come from netifd: the status says when the rule's one is not there
    cfg, problems = parse_text("config rule 'tv'\n\toption path 'wan'\n")
    assert problems == []
    assert cfg.rules[0].action == "path:wan"


def test_path_and_action_that_disagree() -> None:
    _, problems = parse_text(PATHS + "config rule 'tv'\n\toption path 'wan2'\n"
                             "\toption action 'bypass'\n")
    assert where(problems) == [(ERROR, "tv", "path", "wan2")]
    assert "contradicts option action 'bypass'" in problems[0].message
    _, problems = parse_text(PATHS + "config rule 'tv'\n\toption path 'wan2'\n"
                             "\toption action 'path:wan2'\n")
    assert problems == []


def test_a_misspelt_option_is_an_error_not_ignored() -> None:
    # ignored, 'src_mak' would turn the rule into one for all LAN traffic
    cfg, problems = parse_text(PATHS + "config rule 'tv'\n\toption src_mak 'aa:bb:cc:dd:ee:01'"
                               "\n\toption path 'wan2'\n")
    assert where(problems) == [(ERROR, "tv", "src_mak", "aa:bb:cc:dd:ee:01")]
    assert problems[0].message.startswith("unknown option of a 'rule' section (ignoring it "
                                          "could make the rule match more than meant)")
    assert "src_mac" in problems[0].message
    assert cfg.rules == ()


def test_a_bad_value_drops_the_rule_and_is_named() -> None:
    cfg, problems = parse_text(PATHS + "config rule 'tv'\n\tlist dest_port '443'\n"
                               "\tlist dest_port 'http'\n\toption path 'wan2'\n")
    assert where(problems) == [(ERROR, "tv", "dest_port", "http")]
    assert str(problems[0]) == ("error: bonding.tv.dest_port='http': not a port or a range: "
                                "write 443 or 8000-8100")
    assert cfg.rules == ()


def test_domains_or_addresses_not_both() -> None:
    cfg, problems = parse_text("config rule 'tv'\n\tlist dest_domain 'example.com'\n")
    assert problems == [] and cfg.rules[0].dest_domain == ("example.com",)
    _, problems = parse_text("config rule 'tv'\n\tlist dest_domain 'example.com'\n"
                             "\tlist dest_domain 'example.org'\n\tlist dest_ip '192.0.2.1'\n")
    assert where(problems) == [(ERROR, "tv", "dest_domain", "example.com example.org")]
    assert problems[0].message == ("a rule matches dest_ip or dest_domain, not both: make two "
                                   "rules")


def test_two_rules_of_one_name() -> None:
    _, problems = parse_text("config rule\n\toption name 'tv'\n"
                             "config rule\n\toption name 'tv'\n")
    assert where(problems) == [(ERROR, "@rule[1]", None, None)]
    assert problems[0].message == ("a second rule named 'tv' (the first is @rule[0]): give "
                                   "each rule its own name")


def test_the_marks_must_fit_above_the_tproxy_mask() -> None:
    _, problems = parse_text("config globals 'globals'\n\toption tproxy_mark '0x1000000/0x3000000'"
                             "\nconfig rule 'tv'\n\toption action 'bypass'\n")
    assert where(problems) == [(ERROR, "globals", "tproxy_mark", "0x3000000")]
    assert "use a lower tproxy_mark/mask" in problems[0].message
    _, problems = parse_text("config globals 'globals'\n\toption tproxy_mark '0x1000000/0x3000000'"
                             "\n")
    assert problems == []  # without rules the bits are free
