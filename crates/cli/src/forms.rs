//! `funnel form N ID`: one of the manual's six standard forms, built from the record, as a
//! printable HTML page or a CSV spreadsheet.

use funnel_app::StoreUrl;
use funnel_forms::FormKind;
use funnel_types::StreamId;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct FormArgs {
    /// The form: 1 customer info record, 2 follow-up record, 5 key persons, 6 prospect declaration
    /// (of a lead); 3 office summary (of a summary); 4 visit plan (of a plan).
    #[arg(value_parser = clap::value_parser!(u8).range(1..=6))]
    pub form: u8,
    /// The lead, summary or plan id.
    pub id: uuid::Uuid,
    /// `html` (printable) or `csv` (a spreadsheet); by default from the `--out` file's extension,
    /// else `html`.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
}

pub async fn run(url: &StoreUrl, args: FormArgs) -> anyhow::Result<()> {
    let kind = FormKind::from_number(args.form)
        .ok_or_else(|| anyhow::anyhow!("no form {}; the forms are 1 to 6", args.form))?;
    let store = funnel_app::open(url).await?;
    let stream = StreamId::new(kind.category(), args.id)?;
    let records = funnel_store::read_whole_stream(store.as_ref(), &stream).await?;
    let events = records
        .iter()
        .map(funnel_codec::decode_recorded)
        .collect::<Result<Vec<_>, _>>()?;
    let directory = funnel_server::tokens::directory(store.as_ref()).await?;
    let names = funnel_server::forms_names(&directory);
    let tz = events
        .iter()
        .find_map(|e| e.meta.office)
        .and_then(|o| directory.offices.get(&o))
        .map(|o| o.timezone.as_str());
    let tz = funnel_domain::time::zone(tz);
    let mut form = funnel_forms::build(kind, &events, &names, tz).map_err(|e| {
        anyhow::anyhow!(
            "form {} ({}): {e} (form {} is made from a {} id)",
            kind.number(),
            kind.title_zh(),
            kind.number(),
            kind.category()
        )
    })?;
    form.printed = Some(chrono::Utc::now().with_timezone(&tz).date_naive());
    let by_extension = args.out.as_ref().and_then(|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| match e.to_ascii_lowercase().as_str() {
                "csv" => Some(Format::Csv),
                "html" | "htm" => Some(Format::Html),
                _ => None,
            })
    });
    let text = match args.format.or(by_extension).unwrap_or(Format::Html) {
        Format::Html => funnel_forms::to_html(&form),
        Format::Csv => funnel_forms::to_csv(&form),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "表{} {} of {} written to {}",
                kind.number(),
                kind.title_zh(),
                form.subject,
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes())
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// `funnel forms OFFICE --from DATE --to DATE --out FILE.xlsx`.
#[derive(Debug, clap::Args)]
pub struct WorkbookArgs {
    /// The office: id, code or name.
    pub office: String,
    /// First day of the period (YYYY-MM-DD, on the office's clock).
    #[arg(long)]
    pub from: chrono::NaiveDate,
    /// Last day of the period, included (YYYY-MM-DD).
    #[arg(long)]
    pub to: chrono::NaiveDate,
    /// The workbook to write (`.xlsx`).
    #[arg(long)]
    pub out: PathBuf,
}

/// An office's forms for a period as one workbook: a sheet per form, Chinese headers
/// (`funnel_server::office_forms` chooses the records, `funnel_forms::to_xlsx` writes them).
pub async fn workbook(url: &StoreUrl, args: WorkbookArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.from <= args.to,
        "the period ends ({}) before it starts ({}) / 期间的结束日早于开始日",
        args.to,
        args.from
    );
    let store = funnel_app::open(url).await?;
    let directory = funnel_server::tokens::directory(store.as_ref()).await?;
    let office = directory.find_office(&args.office).ok_or_else(|| {
        anyhow::anyhow!(
            "no office `{}` is on record; `funnel office list` shows them / 没有办事处 `{}`",
            args.office,
            args.office
        )
    })?;
    let names = funnel_server::forms_names(&directory);
    let tz = funnel_domain::time::zone(directory.offices.get(&office).map(|o| o.timezone.as_str()));
    let mut forms =
        funnel_server::office_forms(store.as_ref(), &names, office, tz, args.from, args.to)
            .await
            .map_err(|p| anyhow::anyhow!("{} / {}", p.message_en, p.message_zh))?;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    for f in &mut forms {
        f.printed = Some(today);
    }
    let bytes = funnel_forms::to_xlsx(&forms)?;
    std::fs::write(&args.out, bytes)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    eprintln!(
        "{} forms of {} from {} to {} written to {}",
        forms.len(),
        args.office,
        args.from,
        args.to,
        args.out.display()
    );
    Ok(())
}
