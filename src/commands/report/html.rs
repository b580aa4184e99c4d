//! The HTML of `repro report`: a page built section by section, then closed with the stage
//! list, the compute environment, the lineage data and the script.

use repro_engine::provenance::{Provenance, Variant};
use repro_engine::spec::Spec;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `**bold**` and `` `code` `` of the tables' markdown notes, on escaped text.
fn inline_md(s: &str) -> String {
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let e = esc(s);
    let mut rest = e.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            out.push_str(if bold { "</strong>" } else { "<strong>" });
            bold = !bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = r;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if code {
        out.push_str("</code>");
    }
    if bold {
        out.push_str("</strong>");
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        o => o.to_string(),
    }
}

/// A report name with only letters, digits and `-`: usable in ids.
fn id_safe(report: &str) -> String {
    report.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// The id of a cell's written-out lineage.
fn anchor(report: &str, cell: &str) -> String {
    format!("lin-{}-{cell}", id_safe(report))
}

/// The id of a report's section (`t` table, `f` figure).
fn section_id(kind: &str, report: &str) -> String {
    format!("{kind}-{}", id_safe(report))
}

pub struct Page {
    head: String,
    toc: Vec<(String, String)>,
    body: String,
    /// Figures, placed after the tables.
    figures: String,
    figure_toc: Vec<(String, String)>,
    lineage: Map<String, Value>,
    provs: Vec<Provenance>,
}

impl Page {
    pub fn new(spec: &Spec, variant: Option<&Variant>) -> Page {
        let mut head = format!("<header><h1>{}</h1>", esc(&spec.name));
        if !spec.description.is_empty() {
            head.push_str(&format!("<p class=\"lead\">{}</p>", esc(&spec.description)));
        }
        head.push_str("<dl class=\"meta\">");
        head.push_str(&format!("<dt>Pipeline</dt><dd><code>{}</code></dd>", esc(&spec.path.display().to_string())));
        head.push_str(&format!("<dt>Pipeline hash</dt><dd><code>{}</code></dd>", esc(&spec.hash())));
        let run = match variant {
            Some(v) => format!("variant <code>{}</code>: {}", esc(&v.name), esc(&v.overrides.join(" "))),
            None => "the pipeline's defaults (no --set, no --profile)".into(),
        };
        head.push_str(&format!("<dt>Run</dt><dd>{run}</dd>"));
        head.push_str(&format!("<dt>Tool</dt><dd>repro {}</dd></dl>", env!("CARGO_PKG_VERSION")));
        head.push_str("</header>");
        Page {
            head,
            toc: Vec::new(),
            body: String::new(),
            figures: String::new(),
            figure_toc: Vec::new(),
            lineage: Map::new(),
            provs: Vec::new(),
        }
    }

    /// Keeps a report's provenance for the stage list and the environment.
    pub fn provenance(&mut self, p: &Provenance) {
        self.provs.push(p.clone());
    }

    /// A table: ours, the paper's and the difference per row; its notes; its claims; its
    /// lineage (in the script's data and written out for a reader without scripts).
    pub fn table(&mut self, name: &str, t: &Value, prov: &Provenance) {
        let id = section_id("t", name);
        let caption = text(&t["caption"]);
        self.toc.push((id.clone(), if caption.is_empty() { name.to_string() } else { caption.clone() }));
        let b = &mut self.body;
        b.push_str(&format!("<section class=\"report\" id=\"{id}\"><h2>{}</h2>", esc(&caption)));
        if t["synthetic"] == true {
            b.push_str("<p class=\"synthetic\">Synthetic data: every number here is about the generator, not about real data.</p>");
        }
        let cols: Vec<String> = t["columns"].as_array().into_iter().flatten().map(text).collect();
        let rows: Vec<String> = t["rows"].as_array().into_iter().flatten().map(text).collect();
        let cells: Vec<&Value> = t["cells"].as_array().into_iter().flatten().collect();
        let any_paper = cells.iter().any(|c| !c["paper_shown"].is_null());
        b.push_str(&format!(
            "<table class=\"results\" data-report=\"{}\"><thead><tr><th>{}</th>",
            esc(name),
            esc(&text(&t["row_header"]))
        ));
        for c in &cols {
            b.push_str(&format!("<th>{}</th>", esc(c)));
        }
        b.push_str("</tr></thead><tbody>");
        for (r, row) in rows.iter().enumerate() {
            let of_row: Vec<&&Value> = cells.iter().skip(r * cols.len()).take(cols.len()).collect();
            b.push_str(&format!("<tr><th>{}</th>", esc(row)));
            for c in &of_row {
                let cell = text(&c["cell"]);
                let v = esc(&text(&c["value"]));
                let v = if c["best"] == true { format!("<strong>{v}</strong>") } else { v };
                b.push_str(&format!(
                    "<td data-cell=\"{}/{cell}\" title=\"{cell}: click for its lineage\"><a href=\"#{}\">{v}</a></td>",
                    esc(name),
                    anchor(name, &cell)
                ));
            }
            b.push_str("</tr>");
            if any_paper {
                for (label, field) in [("paper", "paper_shown"), ("Δ (ours − paper)", "delta_shown")] {
                    b.push_str(&format!("<tr class=\"paper\"><th>{} · {label}</th>", esc(row)));
                    for c in &of_row {
                        let s = text(&c[field]);
                        b.push_str(&format!("<td>{}</td>", if s.is_empty() { "–".into() } else { esc(&s) }));
                    }
                    b.push_str("</tr>");
                }
            }
        }
        b.push_str("</tbody></table>");
        for n in t["notes"].as_array().into_iter().flatten() {
            b.push_str(&format!("<p class=\"note\">{}</p>", inline_md(&text(n))));
        }
        let claims: Vec<&Value> = t["claim_rows"].as_array().into_iter().flatten().collect();
        if !claims.is_empty() {
            b.push_str(&format!(
                "<h3>Claims of the paper, judged</h3><p class=\"note\">{}</p>",
                inline_md(&text(&t["claims_heading"]))
            ));
            b.push_str("<table class=\"claims\"><thead><tr><th>Claim</th><th>Where</th><th>n</th><th>Means (claimed lower vs higher)</th><th>Margin [CI]</th><th>Test</th><th>Verdict</th></tr></thead><tbody>");
            for c in claims {
                let verdict = text(&c["verdict"]);
                let class = verdict.replace(' ', "-");
                b.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"verdict {class}\">{}</td></tr>",
                    inline_md(&text(&c["claim"])),
                    esc(&text(&c["source"])),
                    esc(&text(&c["n"])),
                    esc(&text(&c["means"])),
                    esc(&text(&c["margin"])),
                    esc(&text(&c["test"])),
                    esc(&verdict)
                ));
            }
            b.push_str("</tbody></table>");
            for l in t["sensitivity_lines"].as_array().into_iter().flatten().map(text).filter(|l| !l.is_empty()) {
                b.push_str(&format!("<p class=\"note\">{}</p>", inline_md(l.trim_start_matches("- "))));
            }
        }
        b.push_str(&format!(
            "<details class=\"lineage\"><summary>Lineage of every cell ({} cells)</summary><dl>",
            prov.cells.len()
        ));
        for c in &prov.cells {
            let cell = text(&c.cell);
            b.push_str(&format!(
                "<dt id=\"{}\">{cell} · {} · {} = {}</dt><dd><ul>",
                anchor(name, &cell),
                esc(&text(&c.row)),
                esc(&text(&c.column)),
                esc(&text(&c.value))
            ));
            for s in &c.sources {
                b.push_str(&format!(
                    "<li><code>{}</code> ({}) key <code>{}</code></li>",
                    esc(&s.instance),
                    esc(&s.output),
                    esc(s.key.as_deref().unwrap_or("?"))
                ));
            }
            b.push_str("</ul></dd>");
            let sources: Vec<Value> = c
                .sources
                .iter()
                .map(|s| {
                    json!({"instance": s.instance, "output": s.output, "key": s.key, "axes": s.axes,
                        "upstream": s.upstream.iter().map(|u| json!({"instance": u.instance, "key": u.key})).collect::<Vec<_>>()})
                })
                .collect();
            self.lineage.insert(
                format!("{name}/{cell}"),
                json!({"row": c.row, "column": c.column, "value": c.value, "n": c.n, "axes": c.axes, "sources": sources,
                    "table": prov.stage.instance, "table_key": prov.stage.key}),
            );
        }
        b.push_str("</dl></details></section>");
    }

    /// A figure, inline, with the instances it was drawn from.
    pub fn figure(&mut self, name: &str, svg: &str, prov: &Provenance) {
        let id = section_id("f", name);
        self.figure_toc.push((id.clone(), format!("Figure {name}")));
        let b = &mut self.figures;
        b.push_str(&format!(
            "<section class=\"report\" id=\"{id}\"><h2>Figure <code>{}</code></h2><figure>",
            esc(name)
        ));
        b.push_str(svg.trim_start_matches(|c| c != '<').trim());
        let inputs: Vec<&str> =
            prov.upstream.iter().filter(|u| u.kind == "train" || u.kind == "gd").map(|u| u.instance.as_str()).collect();
        b.push_str(&format!(
            "<figcaption>Drawn by <code>{}</code> (key <code>{}</code>) from {} runs: {}.</figcaption></figure></section>",
            esc(&prov.stage.instance),
            esc(&prov.stage.key),
            inputs.len(),
            inputs.iter().map(|i| format!("<code>{}</code>", esc(i))).collect::<Vec<_>>().join(", ")
        ));
    }

    /// The whole document.
    pub fn finish(mut self) -> String {
        self.body.push_str(&std::mem::take(&mut self.figures));
        self.toc.append(&mut self.figure_toc);
        self.stages();
        self.environment();
        let mut toc = String::from("<nav><h2>Contents</h2><ol>");
        for (id, title) in &self.toc {
            toc.push_str(&format!("<li><a href=\"#{id}\">{}</a></li>", esc(title)));
        }
        toc.push_str("</ol></nav>");
        // `</` cannot end the script element early: JSON escapes it as `<\/`.
        let data = serde_json::to_string(&Value::Object(self.lineage)).expect("JSON").replace("</", "<\\/");
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} — repro report</title><style>{STYLE}</style></head><body>{head}{toc}<main>{body}</main><aside id=\"lineage-panel\" hidden><button type=\"button\" class=\"close\" aria-label=\"close\">×</button><div class=\"body\"></div></aside><script type=\"application/json\" id=\"lineage-data\">{data}</script><script>{SCRIPT}</script></body></html>\n",
            title = esc(&self.provs.first().map(|p| p.pipeline.clone()).unwrap_or_default()),
            head = self.head,
            body = self.body,
        )
    }

    /// Every upstream stage: kind, how many instances, and the params of each distinct setting.
    fn stages(&mut self) {
        let mut by: BTreeMap<String, (String, Vec<String>, Vec<String>)> = BTreeMap::new();
        for u in self.provs.iter().flat_map(|p| &p.upstream) {
            let stage = u.instance.split('[').next().unwrap_or(&u.instance).to_string();
            let e = by.entry(stage).or_insert_with(|| (u.kind.clone(), Vec::new(), Vec::new()));
            if !e.1.contains(&u.instance) {
                e.1.push(u.instance.clone());
                let params = serde_json::to_string_pretty(&u.params).unwrap_or_default();
                if !e.2.contains(&params) {
                    e.2.push(params);
                }
            }
        }
        self.toc.push(("stages".into(), "Stages, methods and data".into()));
        let b = &mut self.body;
        b.push_str("<section id=\"stages\"><h2>Stages, methods and data</h2><p class=\"note\">Each stage with its kind, its instances and the canonical params they ran with (method variants are params: <code>policy</code>, <code>formula</code>, <code>variant</code>, …; README § Method variants).</p><table class=\"stages\"><thead><tr><th>Stage</th><th>Kind</th><th>Instances</th><th>Params</th></tr></thead><tbody>");
        for (stage, (kind, insts, params)) in &by {
            b.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>",
                esc(stage),
                esc(kind),
                insts.len()
            ));
            for (k, p) in params.iter().enumerate() {
                let label = if params.len() == 1 { "params".to_string() } else { format!("setting {}", k + 1) };
                b.push_str(&format!("<details><summary>{label}</summary><pre>{}</pre></details>", esc(p)));
            }
            b.push_str("</td></tr>");
        }
        b.push_str("</tbody></table></section>");
    }

    fn environment(&mut self) {
        self.toc.push(("environment".into(), "Compute environment".into()));
        let b = &mut self.body;
        b.push_str("<section id=\"environment\"><h2>Compute environment</h2><table class=\"env\"><thead><tr><th>Instances</th><th>Where they ran</th></tr></thead><tbody>");
        for (env, n) in super::environments(&self.provs) {
            let what: Vec<String> = env.iter().map(|(k, v)| format!("{k} = <code>{}</code>", esc(v))).collect();
            b.push_str(&format!("<tr><td>{n}</td><td>{}</td></tr>", what.join(", ")));
        }
        b.push_str("</tbody></table></section>");
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:0 auto;max-width:72rem;padding:1rem 1.5rem;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
.lead{color:#444;margin-top:0}dl.meta{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem}dl.meta dt{font-weight:600}dl.meta dd{margin:0}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem}th,td{border-bottom:1px solid #e3e3e3;padding:.3rem .6rem;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid #888}table.claims td,table.stages td,table.env td{text-align:left}
tr.paper th,tr.paper td{color:#666;font-size:.85rem}td[data-cell]{cursor:pointer}td[data-cell] a{color:inherit;text-decoration:none}
td[data-cell]:hover,td.selected{background:#fff3c4}.verdict{font-weight:700}.verdict.held{color:#1a7f37}.verdict.not-held{color:#c62828}.verdict.inconclusive{color:#8a6d00}
.synthetic{background:#fdecea;border-left:4px solid #c62828;padding:.4rem .8rem}.note{font-size:.9rem;color:#333}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85rem;color:#555}
details.lineage{font-size:.85rem}details.lineage dt{font-weight:600;margin-top:.4rem}pre{font-size:.8rem;background:#f7f7f7;padding:.5rem;overflow:auto}
#lineage-panel{position:fixed;right:1rem;top:1rem;bottom:1rem;width:min(34rem,90vw);overflow:auto;background:#fff;border:1px solid #aaa;box-shadow:0 4px 24px #0003;padding:1rem;font-size:.88rem}
#lineage-panel .close{float:right;font-size:1.3rem;border:0;background:none;cursor:pointer}code{font-size:.85em;word-break:break-all}";

const SCRIPT: &str = r#"(function(){
const data=JSON.parse(document.getElementById('lineage-data').textContent);
const panel=document.getElementById('lineage-panel');
const esc=s=>String(s==null?'':s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
function show(id){const d=data[id];if(!d)return;
let h='<h2>Lineage of '+esc(id)+'</h2><p>'+esc(d.row)+' · '+esc(d.column)+' = <b>'+esc(d.value)+'</b> (n = '+d.n+')</p>';
h+='<p>Axis values: <code>'+esc(JSON.stringify(d.axes))+'</code></p><p>Table <code>'+esc(d.table)+'</code> key <code>'+esc(d.table_key)+'</code></p><ol class="sources">';
for(const s of d.sources){h+='<li><code>'+esc(s.instance)+'</code> ('+esc(s.output)+')<br>key <code>'+esc(s.key||'?')+'</code><br>axes <code>'+esc(JSON.stringify(s.axes))+'</code><br>upstream: '+s.upstream.map(u=>'<code>'+esc(u.instance)+'</code>').join(' ← ')+'</li>';}
panel.querySelector('.body').innerHTML=h+'</ol>';panel.hidden=false;panel.dataset.cell=id;
document.querySelectorAll('td.selected').forEach(e=>e.classList.remove('selected'));
const td=document.querySelector('td[data-cell="'+CSS.escape(id)+'"]');if(td)td.classList.add('selected');}
document.addEventListener('click',e=>{const td=e.target.closest('td[data-cell]');if(td){e.preventDefault();show(td.dataset.cell);}});
panel.querySelector('.close').addEventListener('click',()=>{panel.hidden=true;});
const m=location.hash.match(/^#cell=(.+)$/);if(m){const td=document.querySelector('td[data-cell="'+CSS.escape(decodeURIComponent(m[1]))+'"]');if(td)td.click();}
document.body.dataset.layout=JSON.stringify({tables:document.querySelectorAll('table.results').length,figures:[...document.querySelectorAll('figure svg')].map(s=>Math.round(s.getBoundingClientRect().width))});
})();"#;
