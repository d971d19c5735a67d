//! The figures and the Markdown report: value, reference, ratio, target, PASS/MISS, and a note
//! (why a target is missed and what would fix it).

use std::fmt::Write as _;

/// What a figure must satisfy.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// value / reference ≤ x.
    RatioAtMost(f64),
    /// reference / value ≥ x (how many times faster than the reference).
    SpeedupAtLeast(f64),
    /// value ≤ x in the figure's unit.
    AtMost(f64),
    /// No target: reported for context, ratio shown as "× faster" than the reference.
    Faster,
    /// No target: reported for context.
    Info,
}

/// One measured figure. `value` and `reference` share `unit`.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Section heading it belongs to.
    pub section: &'static str,
    /// What was measured.
    pub name: String,
    /// Measured value.
    pub value: f64,
    /// The reference's value, when there is one.
    pub reference: Option<(String, f64)>,
    /// Unit of value and reference ("µs", "ms", "MiB", "B").
    pub unit: &'static str,
    /// The target.
    pub target: Target,
    /// Which issue names the target.
    pub issue: &'static str,
    /// Context, always shown.
    pub note: String,
    /// Why a miss happens and what would fix it, shown only on MISS.
    pub on_miss: String,
}

impl Figure {
    /// A figure with no reference and no target yet.
    pub fn new(
        section: &'static str,
        issue: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Figure {
            section,
            name: name.into(),
            value,
            reference: None,
            unit,
            target: Target::Info,
            issue,
            note: String::new(),
            on_miss: String::new(),
        }
    }

    /// Sets the reference.
    pub fn vs(mut self, name: impl Into<String>, value: f64) -> Self {
        self.reference = Some((name.into(), value));
        self
    }

    /// Sets the target.
    pub fn target(mut self, t: Target) -> Self {
        self.target = t;
        self
    }

    /// Sets the context note.
    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = n.into();
        self
    }

    /// Sets the explanation shown on a miss.
    pub fn on_miss(mut self, n: impl Into<String>) -> Self {
        self.on_miss = n.into();
        self
    }

    /// value / reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference.as_ref().map(|(_, r)| self.value / r)
    }

    /// PASS / MISS / "—" (no target).
    pub fn verdict(&self) -> &'static str {
        let ok = match (self.target, self.ratio()) {
            (Target::RatioAtMost(x), Some(r)) => r <= x,
            (Target::SpeedupAtLeast(x), Some(r)) => 1.0 / r >= x,
            (Target::AtMost(x), _) => self.value <= x,
            _ => return "—",
        };
        if ok {
            "PASS"
        } else {
            "MISS"
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtMost(x) => format!("≤ {x}×"),
            Target::SpeedupAtLeast(x) => format!("≥ {x}× faster"),
            Target::AtMost(x) => format!("≤ {} {}", num(x), self.unit),
            Target::Info | Target::Faster => "—".into(),
        }
    }
}

/// Something the run could not measure, and why.
#[derive(Debug, Clone)]
pub struct NotMeasured {
    /// The figure.
    pub name: String,
    /// Why.
    pub reason: String,
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Renders the report.
pub fn render(header: &str, figures: &[Figure], missing: &[NotMeasured]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    let mut section = "";
    for f in figures {
        if f.section != section {
            section = f.section;
            let _ = writeln!(out, "\n## {section}\n");
            let _ = writeln!(
                out,
                "| Figure | Measured | Reference | Ratio | Target | Result |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|");
        }
        let (reference, ratio) = match (&f.reference, f.ratio()) {
            (Some((name, v)), Some(r)) => {
                let ratio = match f.target {
                    Target::SpeedupAtLeast(_) | Target::Faster => {
                        format!("{}× faster", num(1.0 / r))
                    }
                    _ => format!("{}×", num(r)),
                };
                (format!("{} {} ({name})", num(*v), f.unit), ratio)
            }
            _ => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            "| {} ({}) | {} {} | {reference} | {ratio} | {} | {} |",
            f.name,
            f.issue,
            num(f.value),
            f.unit,
            f.target_text(),
            f.verdict()
        );
    }
    let _ = writeln!(out, "\n## Notes\n");
    for f in figures {
        let miss = if f.verdict() == "MISS" {
            f.on_miss.as_str()
        } else {
            ""
        };
        let text = [f.note.as_str(), miss]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() {
            let _ = writeln!(out, "- **{}** ({}): {}", f.name, f.verdict(), text);
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(out, "\n## Not measured\n");
        for m in missing {
            let _ = writeln!(out, "- **{}**: {}", m.name, m.reason);
        }
    }
    out
}
