//! The paper's own claims and the verdict rule that judges them.
//!
//! A claim is quoted from the paper with where it stands there, and names the cells it
//! compares by axis values: `lower`/`higher` ("X is below Y"), or `lowest`/`highest` with
//! `among` ("X is best among …"). It is judged from the replicate values behind those cells:
//!
//! - the **margin** is the difference of means in the claimed direction (positive supports
//!   the claim), with its 95 % confidence interval;
//! - the interval is a **paired t** interval when both sides have one value per replicate and
//!   the same replicates (their remaining axis values, e.g. `rep`, match one to one), else
//!   **Welch's t** interval (unequal variances, Welch–Satterthwaite degrees of freedom);
//! - `held` when the whole interval is above 0, `not held` when it is below 0, `inconclusive`
//!   when it contains 0 or when a side has fewer than 2 values;
//! - "best among k others" holds when each of the k pairwise claims holds at level
//!   1 − 0.05/k (Bonferroni), is not held when any competitor is significantly better, and is
//!   inconclusive otherwise; the report shows the rival whose interval reaches lowest;
//! - a claim marked `exact` compares values with no random element (e.g. full-batch gradient
//!   descent from a fixed start): its verdict is the sign of the margin, and the report says so.
//!
//! The same rule is stated in the README (§ Verdicts).

use super::matches;
use crate::values::show;
use repro_core::ParamError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use statrs::distribution::{ContinuousCDF, StudentsT};
use std::collections::BTreeMap;

/// Axis values naming the cells of one side of a claim.
pub type Selector = BTreeMap<String, Value>;

/// One of the paper's own claims, quoted, with the cells it compares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The paper's words (short quote) or, for a proxy, what is checked instead.
    pub text: String,
    /// Where the claim stands in the paper: section, table, figure, or line of the paper file.
    #[serde(default)]
    pub source: String,
    /// Cells claimed to be lower (with `higher`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<Selector>,
    /// Cells claimed to be higher (with `lower`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher: Option<Selector>,
    /// Cells claimed to be the lowest of `among` and themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowest: Option<Selector>,
    /// Cells claimed to be the highest of `among` and themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest: Option<Selector>,
    /// The competitors of `lowest`/`highest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub among: Vec<Selector>,
    /// Non-empty: this is a weaker proxy for the paper's claim, and why it is checked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub proxy: String,
    /// Non-empty: the compared values are deterministic (no random element), and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub exact: String,
}

/// The three verdicts, plus "not measured" when a side has no value at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Held,
    NotHeld,
    Inconclusive,
    NotMeasured,
}

impl Verdict {
    /// The word the reports print.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::NotHeld => "not held",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// How the interval was computed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Test {
    /// Paired t over the replicates named by these axes.
    Paired { over: Vec<String> },
    /// Welch's unequal-variance t.
    Welch,
    /// No interval: deterministic values (`exact`).
    Exact,
    /// Too few values for an interval.
    None,
}

impl Test {
    /// A short description for the reports.
    pub fn describe(&self) -> String {
        match self {
            Test::Paired { over } if over.is_empty() => "paired t".into(),
            Test::Paired { over } => format!("paired t over {}", over.join(", ")),
            Test::Welch => "Welch t".into(),
            Test::Exact => "exact".into(),
            Test::None => "–".into(),
        }
    }
}

/// One comparison "lower side is below higher side".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub n_lower: usize,
    pub n_higher: usize,
    pub mean_lower: Option<f64>,
    pub mean_higher: Option<f64>,
    /// mean(higher) − mean(lower): positive supports the claim.
    pub margin: Option<f64>,
    /// The confidence interval of the margin.
    pub ci: Option<(f64, f64)>,
    /// Its level, e.g. 0.95.
    pub level: f64,
    pub test: Test,
    pub verdict: Verdict,
}

/// A claim with its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    pub claim: Claim,
    /// The comparison shown: the claim's own, or for "best among" the rival whose interval
    /// reaches lowest (the one that decides the verdict).
    pub shown: Comparison,
    /// For "best among": one comparison per competitor, in `among` order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub competitors: Vec<Comparison>,
    pub verdict: Verdict,
    /// The value of the sensitivity axis this verdict is for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setting: Option<Value>,
}

/// The confidence level of every verdict.
pub const LEVEL: f64 = 0.95;

/// Checks a claim's shape: a quote, a source, and exactly one of lower+higher,
/// lowest+among, highest+among.
pub fn validate(i: usize, c: &Claim) -> Result<(), ParamError> {
    let at = |f: &str| format!("claims[{i}].{f}");
    if c.text.trim().is_empty() {
        return Err(ParamError::new(at("text"), "a claim needs the paper's words"));
    }
    if c.source.trim().is_empty() {
        return Err(ParamError::new(
            at("source"),
            "a claim needs where it stands in the paper (section, table, or line of the paper file)",
        ));
    }
    let pair = c.lower.is_some() || c.higher.is_some();
    let best = c.lowest.is_some() || c.highest.is_some();
    match (pair, best) {
        (true, true) => {
            Err(ParamError::new(at("lower"), "use either lower/higher or lowest/highest with among, not both"))
        }
        (false, false) => {
            Err(ParamError::new(at("lower"), "a claim needs lower and higher, or lowest/highest with among"))
        }
        (true, false) if c.lower.is_none() || c.higher.is_none() => {
            Err(ParamError::new(at(if c.lower.is_none() { "lower" } else { "higher" }), "lower and higher go together"))
        }
        (true, false) if !c.among.is_empty() => Err(ParamError::new(at("among"), "`among` goes with lowest/highest")),
        (false, true) if c.lowest.is_some() && c.highest.is_some() => {
            Err(ParamError::new(at("highest"), "a claim is either lowest or highest"))
        }
        (false, true) if c.among.is_empty() => {
            Err(ParamError::new(at("among"), "\"best among\" needs the competitors, e.g. among = [{ act = \"relu\" }]"))
        }
        _ => Ok(()),
    }
}

/// The 1 − (1 − level)/2 quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile(level: f64, df: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    t.inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
}

fn verdict_of(lo: f64, hi: f64) -> Verdict {
    if lo > 0.0 {
        Verdict::Held
    } else if hi < 0.0 {
        Verdict::NotHeld
    } else {
        Verdict::Inconclusive
    }
}

/// Welch's interval for mean(b) − mean(a).
pub fn welch(a: &[f64], b: &[f64], level: f64) -> (f64, f64) {
    let d = mean(b) - mean(a);
    let (va, vb) = (var(a) / a.len() as f64, var(b) / b.len() as f64);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return (d, d);
    }
    let df = (va + vb).powi(2) / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64);
    let h = t_quantile(level, df) * se;
    (d - h, d + h)
}

/// The paired interval for mean(b − a), pairs in order.
pub fn paired(a: &[f64], b: &[f64], level: f64) -> (f64, f64) {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let d = mean(&diffs);
    let se = (var(&diffs) / diffs.len() as f64).sqrt();
    if se == 0.0 {
        return (d, d);
    }
    let h = t_quantile(level, (diffs.len() - 1) as f64) * se;
    (d - h, d + h)
}

/// An item: the axis values of one measured value.
type Item = (BTreeMap<String, Value>, Option<f64>);

/// The values of one side, each with its replicate key (the axes named by neither side).
fn side(items: &[Item], sel: &Selector, skip: &[&String]) -> Vec<(String, f64)> {
    items
        .iter()
        .filter(|(a, _)| matches(a, sel))
        .filter_map(|(a, v)| {
            let rest: Vec<String> =
                a.iter().filter(|(k, _)| !skip.contains(k)).map(|(k, v)| format!("{k}={}", show(v))).collect();
            v.map(|v| (rest.join(","), v))
        })
        .collect()
}

/// Judges "lower is below higher" at `level`.
pub fn compare(items: &[Item], lower: &Selector, higher: &Selector, exact: bool, level: f64) -> Comparison {
    let skip: Vec<&String> = lower.keys().chain(higher.keys()).collect();
    let (a, b) = (side(items, lower, &skip), side(items, higher, &skip));
    let va: Vec<f64> = a.iter().map(|x| x.1).collect();
    let vb: Vec<f64> = b.iter().map(|x| x.1).collect();
    let (ml, mh) = ((!va.is_empty()).then(|| mean(&va)), (!vb.is_empty()).then(|| mean(&vb)));
    let margin = ml.zip(mh).map(|(l, h)| h - l);
    let mut c = Comparison {
        n_lower: va.len(),
        n_higher: vb.len(),
        mean_lower: ml,
        mean_higher: mh,
        margin,
        ci: None,
        level,
        test: Test::None,
        verdict: Verdict::NotMeasured,
    };
    let Some(d) = margin else { return c };
    if exact {
        c.test = Test::Exact;
        c.verdict = if d > 0.0 {
            Verdict::Held
        } else if d < 0.0 {
            Verdict::NotHeld
        } else {
            Verdict::Inconclusive
        };
        return c;
    }
    if va.len() < 2 || vb.len() < 2 {
        c.verdict = Verdict::Inconclusive;
        return c;
    }
    // Paired when both sides have the same replicate keys, one value each.
    let mut ka: Vec<&String> = a.iter().map(|x| &x.0).collect();
    let mut kb: Vec<&String> = b.iter().map(|x| &x.0).collect();
    ka.sort();
    kb.sort();
    let unique = ka.windows(2).all(|w| w[0] != w[1]);
    let (lo, hi) = if unique && ka == kb {
        let mut pa = a.clone();
        let mut pb = b.clone();
        pa.sort_by(|x, y| x.0.cmp(&y.0));
        pb.sort_by(|x, y| x.0.cmp(&y.0));
        let over: Vec<String> = items
            .iter()
            .find(|(ax, _)| matches(ax, lower))
            .map(|(ax, _)| ax.keys().filter(|k| !skip.contains(k)).cloned().collect())
            .unwrap_or_default();
        c.test = Test::Paired { over };
        paired(&pa.iter().map(|x| x.1).collect::<Vec<_>>(), &pb.iter().map(|x| x.1).collect::<Vec<_>>(), level)
    } else {
        c.test = Test::Welch;
        welch(&va, &vb, level)
    };
    c.ci = Some((lo, hi));
    c.verdict = verdict_of(lo, hi);
    c
}

/// Judges one claim (validated) against the items.
pub fn judge(c: &Claim, items: &[Item]) -> Judged {
    let exact = !c.exact.is_empty();
    if let (Some(lo), Some(hi)) = (&c.lower, &c.higher) {
        let shown = compare(items, lo, hi, exact, LEVEL);
        return Judged { claim: c.clone(), verdict: shown.verdict, shown, competitors: vec![], setting: None };
    }
    let k = c.among.len().max(1) as f64;
    let level = 1.0 - (1.0 - LEVEL) / k;
    let competitors: Vec<Comparison> = c
        .among
        .iter()
        .map(|other| match (&c.lowest, &c.highest) {
            (Some(best), _) => compare(items, best, other, exact, level),
            (_, Some(best)) => compare(items, other, best, exact, level),
            _ => unreachable!("validated"),
        })
        .collect();
    let all = |v: Verdict| competitors.iter().all(|x| x.verdict == v);
    let any = |v: Verdict| competitors.iter().any(|x| x.verdict == v);
    let verdict = if competitors.is_empty() || any(Verdict::NotMeasured) {
        Verdict::NotMeasured
    } else if all(Verdict::Held) {
        Verdict::Held
    } else if any(Verdict::NotHeld) {
        Verdict::NotHeld
    } else {
        Verdict::Inconclusive
    };
    // Show the comparison that decides the verdict: the rival with the lowest interval bound
    // (the margin where there is no interval).
    let low = |x: &Comparison| x.ci.map(|c| c.0).or(x.margin).unwrap_or(f64::NEG_INFINITY);
    let shown = competitors
        .iter()
        .min_by(|x, y| low(x).partial_cmp(&low(y)).unwrap_or(std::cmp::Ordering::Equal))
        .cloned()
        .expect("among is not empty");
    Judged { claim: c.clone(), shown, competitors, verdict, setting: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    /// scipy 1.17.1:
    /// ```python
    /// from scipy import stats
    /// stats.t.ppf(0.975, 5)          # 2.5705818356363146
    /// stats.t.ppf(0.975, 1)          # 12.706204736174694
    /// stats.t.ppf(1 - 0.025/3, 2.5)  # 5.784227505939248 (Bonferroni over 3, fractional df)
    /// ```
    #[test]
    fn t_quantiles_agree_with_scipy() {
        close(t_quantile(0.95, 5.0), 2.5705818356363146);
        close(t_quantile(0.95, 1.0), 12.706204736174694);
        close(t_quantile(1.0 - 0.05 / 3.0, 2.5), 5.784227505939248);
    }

    /// scipy 1.17.1:
    /// ```python
    /// a = [0.3659, 0.3701, 0.3622]; b = [0.3322, 0.3350, 0.3301, 0.3340]
    /// r = stats.ttest_ind(b, a, equal_var=False)
    /// r.confidence_interval(0.95)  # (-0.04144022852615896, -0.02504310480717438)
    /// ```
    #[test]
    fn welch_interval_agrees_with_scipy() {
        let a = [0.3659, 0.3701, 0.3622];
        let b = [0.3322, 0.3350, 0.3301, 0.3340];
        let (lo, hi) = welch(&a, &b, 0.95);
        close(lo, -0.04144022852615896);
        close(hi, -0.02504310480717438);
    }

    /// scipy 1.17.1:
    /// ```python
    /// a = [0.40, 0.42, 0.41]; b = [0.43, 0.45, 0.445]
    /// stats.ttest_rel(b, a).confidence_interval(0.95)  # (0.02449557878375086, 0.03883775454958249)
    /// ```
    #[test]
    fn paired_interval_agrees_with_scipy() {
        let (lo, hi) = paired(&[0.40, 0.42, 0.41], &[0.43, 0.45, 0.445], 0.95);
        close(lo, 0.02449557878375086);
        close(hi, 0.03883775454958249);
    }

    fn item(model: &str, rep: i64, v: f64) -> Item {
        (BTreeMap::from([("model".to_string(), json!(model)), ("rep".to_string(), json!(rep))]), Some(v))
    }

    fn sel(model: &str) -> Selector {
        BTreeMap::from([("model".to_string(), json!(model))])
    }

    #[test]
    fn matching_replicates_are_paired_and_others_use_welch() {
        let items = vec![
            item("l", 1, 0.40),
            item("l", 2, 0.42),
            item("l", 3, 0.41),
            item("d", 1, 0.43),
            item("d", 2, 0.45),
            item("d", 3, 0.445),
        ];
        let c = compare(&items, &sel("l"), &sel("d"), false, 0.95);
        assert_eq!(c.test, Test::Paired { over: vec!["rep".into()] });
        assert_eq!(c.verdict, Verdict::Held);
        close(c.ci.unwrap().0, 0.02449557878375086);
        // Drop one replicate of `d`: the sides no longer pair, Welch's interval is used.
        let c = compare(&items[..5], &sel("l"), &sel("d"), false, 0.95);
        assert_eq!(c.test, Test::Welch);
    }

    #[test]
    fn one_replicate_is_inconclusive_and_exact_claims_use_the_sign() {
        let items = vec![item("l", 1, 0.30), item("d", 1, 0.40)];
        let c = compare(&items, &sel("l"), &sel("d"), false, 0.95);
        assert_eq!((c.verdict, c.ci), (Verdict::Inconclusive, None));
        close(c.margin.unwrap(), 0.10);
        let c = compare(&items, &sel("l"), &sel("d"), true, 0.95);
        assert_eq!((c.verdict, c.test), (Verdict::Held, Test::Exact));
        let c = compare(&items, &sel("d"), &sel("l"), true, 0.95);
        assert_eq!(c.verdict, Verdict::NotHeld);
    }

    #[test]
    fn an_interval_straddling_zero_is_inconclusive_and_one_below_is_not_held() {
        let straddle = vec![item("l", 1, 0.40), item("l", 2, 0.44), item("d", 1, 0.43), item("d", 2, 0.42)];
        assert_eq!(compare(&straddle, &sel("l"), &sel("d"), false, 0.95).verdict, Verdict::Inconclusive);
        let below = vec![
            item("l", 1, 0.50),
            item("l", 2, 0.51),
            item("l", 3, 0.52),
            item("d", 1, 0.40),
            item("d", 2, 0.41),
            item("d", 3, 0.42),
        ];
        assert_eq!(compare(&below, &sel("l"), &sel("d"), false, 0.95).verdict, Verdict::NotHeld);
    }

    #[test]
    fn best_among_needs_every_competitor_beaten_at_the_bonferroni_level() {
        // a beats b clearly; c − a = [0.02, 0.03, 0.025] per replicate. scipy 1.17.1:
        // stats.ttest_rel(c, a).confidence_interval(0.975)  # (0.007086706725189511, 0.04291329327481054)
        // the Bonferroni level over two competitors, still above 0: held.
        let mut items = Vec::new();
        for (rep, a, b, c) in [(1, 0.40, 0.50, 0.42), (2, 0.41, 0.52, 0.44), (3, 0.42, 0.51, 0.445)] {
            items.push(item("a", rep, a));
            items.push(item("b", rep, b));
            items.push(item("c", rep, c));
        }
        let claim = Claim {
            text: "a is best".into(),
            source: "Table 1".into(),
            lowest: Some(sel("a")),
            among: vec![sel("b"), sel("c")],
            ..Claim::default()
        };
        let j = judge(&claim, &items);
        assert_eq!(j.verdict, Verdict::Held);
        assert_eq!(j.competitors.len(), 2);
        close(j.shown.margin.unwrap(), 0.025);
        close(j.shown.level, 0.975);
        close(j.shown.ci.unwrap().0, 0.007086706725189511);
        // Make c better than a at every replicate by a clear margin: not held.
        for it in items.iter_mut().filter(|(a, _)| a["model"] == json!("c")) {
            it.1 = it.1.map(|v| v - 0.1);
        }
        assert_eq!(judge(&claim, &items).verdict, Verdict::NotHeld);
        // `highest` turns the comparison around.
        let hi = Claim { lowest: None, highest: Some(sel("b")), among: vec![sel("a")], ..claim.clone() };
        assert_eq!(judge(&hi, &items).verdict, Verdict::Held);
    }

    #[test]
    fn claims_need_a_source_and_one_shape() {
        let ok = Claim {
            text: "x".into(),
            source: "Table 1".into(),
            lower: Some(sel("a")),
            higher: Some(sel("b")),
            ..Claim::default()
        };
        assert!(validate(0, &ok).is_ok());
        let e = validate(3, &Claim { source: String::new(), ..ok.clone() }).unwrap_err();
        assert_eq!(e.param, "claims[3].source");
        let e = validate(0, &Claim { higher: None, ..ok.clone() }).unwrap_err();
        assert_eq!(e.param, "claims[0].higher");
        let e = validate(0, &Claim { lowest: Some(sel("a")), ..ok.clone() }).unwrap_err();
        assert_eq!(e.param, "claims[0].lower");
        let e = validate(0, &Claim { lower: None, higher: None, lowest: Some(sel("a")), ..ok }).unwrap_err();
        assert_eq!(e.param, "claims[0].among");
    }
}
