//! Feed config `[feed.results]`: how one feed's contests, units and
//! choices line up with other sources', so the aggregator can merge them
//! (a state site and its county sites, AP and the Secretary of State).
//!
//! ```toml
//! [feed.results]
//! contests = { "10000" = "ga-2021-senate" }   # source contest id -> shared id
//! units = { "-1" = "GA" }                      # source unit id -> shared id
//! choices = { "0" = "perdue", "1" = "ossoff" } # source choice id -> shared id
//! parent = "GA"                                # parent of units the source gives none
//! ```
//!
//! The ingestor stamps each published cell with the resulting
//! [`ResultLinks`] and the feed's `priority`, and partitions a linked
//! contest by its shared id, so every source of one merged contest lands on
//! one partition and one aggregator instance. Source ids themselves are
//! never rewritten: the cell key and the source's own view stay as
//! published.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use votewire_schemas::{ChoiceRef, ContestRef, ReportingUnitRef, ResultLinks, Text};

/// `[feed.results]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsConfig {
    /// Source contest id → the shared contest id it merges under. A contest
    /// not listed stands alone.
    #[serde(default)]
    pub contests: BTreeMap<String, String>,
    /// Source unit id → shared unit id (unlisted units keep their source
    /// id, matched across sources after trimming and collapsing spaces).
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    /// Source choice id → shared choice id (unlisted choices of a merged
    /// contest match other sources' by normalized name).
    #[serde(default)]
    pub choices: BTreeMap<String, String>,
    /// The parent of this feed's units that name none: a county site's
    /// county belongs to the state.
    #[serde(default)]
    pub parent: Option<String>,
}

impl ResultsConfig {
    /// Every problem with the section, as `field: why`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, map) in [
            ("contests", &self.contests),
            ("units", &self.units),
            ("choices", &self.choices),
        ] {
            for (from, to) in map {
                if from.trim().is_empty() || to.trim().is_empty() {
                    out.push(format!(
                        "results.{what}: {from:?} = {to:?}: ids must not be empty"
                    ));
                }
            }
        }
        if self.parent.as_deref().is_some_and(|p| p.trim().is_empty()) {
            out.push("results.parent: must not be empty".into());
        }
        out
    }
}

/// One feed's `[feed.results]` and priority, ready to stamp cells.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLinker {
    config: ResultsConfig,
    priority: i32,
}

fn text(s: &str) -> Text {
    Text::from(s)
}

impl ResultLinker {
    /// A linker for one feed's `[feed.results]` and its `priority` (0 when the entry sets
    /// none).
    pub fn new(config: ResultsConfig, priority: i32) -> Self {
        Self { config, priority }
    }

    /// The id a contest is partitioned by: its shared id when linked.
    pub fn partition_contest<'a>(&'a self, contest_source_id: &'a str) -> &'a str {
        self.config
            .contests
            .get(contest_source_id)
            .map_or(contest_source_id, String::as_str)
    }

    /// The links of a cell of `contest` at `unit` for `choice`.
    pub fn links(
        &self,
        contest: &ContestRef,
        unit: &ReportingUnitRef,
        choice: &ChoiceRef,
    ) -> Arc<ResultLinks> {
        let c = &self.config;
        let unit_id = c.units.get(&*unit.source_id).map(|u| text(u));
        let shared_unit = unit_id.as_deref().unwrap_or(&unit.source_id);
        let parent_unit_id = match unit.parent_source_id.as_deref() {
            Some(p) => Some(c.units.get(p).map_or_else(|| text(p), |u| text(u))),
            None => c.parent.as_deref().filter(|p| *p != shared_unit).map(text),
        };
        Arc::new(ResultLinks {
            contest_id: c.contests.get(&*contest.source_id).map(|s| text(s)),
            unit_id,
            parent_unit_id,
            choice_id: c.choices.get(&*choice.source_id).map(|s| text(s)),
            priority: self.priority,
            root_unit_id: c.parent.as_deref().map(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use votewire_schemas::{ChoiceKind, ContestKind, UnitType};

    fn contest(id: &str) -> ContestRef {
        ContestRef {
            source_id: text(id),
            name: text("US Senate"),
            kind: ContestKind::Candidate,
            vote_for: None,
            primary_party: None,
        }
    }

    fn unit(id: &str, parent: Option<&str>) -> ReportingUnitRef {
        ReportingUnitRef {
            source_id: text(id),
            name: text(id),
            unit_type: UnitType::County,
            type_raw: None,
            parent_source_id: parent.map(text),
            fips: None,
        }
    }

    fn choice(id: &str) -> ChoiceRef {
        ChoiceRef {
            source_id: text(id),
            name: text("Jon Ossoff"),
            kind: ChoiceKind::Candidate,
            party: None,
            incumbent: None,
        }
    }

    fn linker() -> ResultLinker {
        let config: ResultsConfig = toml::from_str(
            r#"
            contests = { "2" = "ga-senate" }
            units = { "-1" = "GA", "Appling " = "Appling" }
            choices = { "7" = "ossoff" }
            parent = "GA"
            "#,
        )
        .unwrap();
        assert!(config.problems().is_empty());
        ResultLinker::new(config, 5)
    }

    #[test]
    fn a_county_sites_units_get_the_configured_parent_and_mapped_ids() {
        let l = linker();
        let county = l.links(&contest("2"), &unit("Appling ", None), &choice("7"));
        assert_eq!(county.contest_id.as_deref(), Some("ga-senate"));
        assert_eq!(county.unit_id.as_deref(), Some("Appling"));
        assert_eq!(county.parent_unit_id.as_deref(), Some("GA"), "from config");
        assert_eq!(county.choice_id.as_deref(), Some("ossoff"));
        assert_eq!(county.priority, 5);
        // A precinct keeps its source's parent link, mapped.
        let precinct = l.links(&contest("2"), &unit("P1", Some("Appling ")), &choice("8"));
        assert_eq!(precinct.parent_unit_id.as_deref(), Some("Appling"));
        assert_eq!(precinct.unit_id, None);
        assert_eq!(precinct.choice_id, None);
        // The state itself is not its own parent.
        let state = l.links(&contest("2"), &unit("-1", None), &choice("7"));
        assert_eq!(state.unit_id.as_deref(), Some("GA"));
        assert_eq!(state.parent_unit_id, None);
        // Unlisted contests stand alone and partition by their own id.
        assert_eq!(
            l.links(&contest("3"), &unit("x", None), &choice("7"))
                .contest_id,
            None
        );
        assert_eq!(l.partition_contest("2"), "ga-senate");
        assert_eq!(l.partition_contest("3"), "3");
    }

    #[test]
    fn empty_ids_and_unknown_keys_are_refused() {
        let bad: ResultsConfig = toml::from_str(r#"contests = { "2" = " " }"#).unwrap();
        assert_eq!(bad.problems().len(), 1);
        assert!(toml::from_str::<ResultsConfig>(r#"contest = { "2" = "x" }"#).is_err());
    }
}
