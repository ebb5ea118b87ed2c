"""The catalogue of rights a principal may grant (Civil Procedure Code of Kazakhstan).

Codes are a public contract: never rename one. Titles are in English, Russian and Kazakh.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import InvalidInputError


@dataclass(frozen=True)
class Right:
    code: str
    article: str
    en: str
    ru: str
    kk: str

    def as_public(self) -> dict[str, object]:
        return {
            "code": self.code,
            "article": self.article,
            "title": {"en": self.en, "ru": self.ru, "kk": self.kk},
        }


CATALOGUE: tuple[Right, ...] = (
    Right(
        "represent_first_instance",
        "CPC art. 58",
        "Represent the principal in the court of first instance",
        "Представлять интересы в суде первой инстанции",
        "Бірінші сатыдағы сотта мүдделерін білдіру",
    ),
    Right(
        "represent_appeal",
        "CPC art. 58",
        "Represent the principal in the court of appeal",
        "Представлять интересы в суде апелляционной инстанции",
        "Апелляциялық сатыдағы сотта мүдделерін білдіру",
    ),
    Right(
        "represent_cassation",
        "CPC art. 58",
        "Represent the principal in the court of cassation",
        "Представлять интересы в суде кассационной инстанции",
        "Кассациялық сатыдағы сотта мүдделерін білдіру",
    ),
    Right(
        "sign_and_file_claim",
        "CPC art. 58",
        "Sign the statement of claim and file it",
        "Подписывать исковое заявление и предъявлять его в суд",
        "Талап арызға қол қою және оны сотқа беру",
    ),
    Right(
        "file_complaints_and_applications",
        "CPC art. 58",
        "Sign and file complaints, petitions and applications",
        "Подписывать и подавать жалобы, ходатайства и заявления",
        "Шағымдарға, өтінішхаттарға және өтініштерге қол қою және беру",
    ),
    Right(
        "refuse_claim",
        "CPC art. 58",
        "Refuse the claim in full or in part",
        "Полностью или частично отказываться от иска",
        "Талаптан толық немесе ішінара бас тарту",
    ),
    Right(
        "recognise_claim",
        "CPC art. 58",
        "Recognise the claim",
        "Признавать иск",
        "Талапты мойындау",
    ),
    Right(
        "increase_claims",
        "CPC art. 58",
        "Increase the claims",
        "Увеличивать размер исковых требований",
        "Талап қою талаптарының мөлшерін ұлғайту",
    ),
    Right(
        "reduce_claims",
        "CPC art. 58",
        "Reduce the claims",
        "Уменьшать размер исковых требований",
        "Талап қою талаптарының мөлшерін азайту",
    ),
    Right(
        "change_subject_or_grounds",
        "CPC art. 58",
        "Change the subject or the grounds of the claim",
        "Изменять предмет или основание иска",
        "Талаптың нысанасын немесе негізін өзгерту",
    ),
    Right(
        "access_case_materials",
        "CPC art. 46(1)",
        "Read the case materials, make extracts and copies",
        "Знакомиться с материалами дела, делать выписки и снимать копии",
        "Іс материалдарымен танысу, үзінділер жасау және көшірмелер түсіру",
    ),
    Right(
        "file_recusal",
        "CPC art. 46(1)",
        "Declare recusals",
        "Заявлять отводы",
        "Қарсылық мәлімдеу",
    ),
    Right(
        "file_petitions",
        "CPC art. 46(1)",
        "File petitions: securing the claim, evidence, demanding evidence",
        "Заявлять ходатайства, в том числе об обеспечении иска, "
        "представлении и истребовании доказательств",
        "Өтінішхаттар мәлімдеу, оның ішінде талапты қамтамасыз ету, "
        "дәлелдемелерді ұсыну және талап ету туралы",
    ),
    Right(
        "review_court_records",
        "CPC art. 46(1)",
        "Read the court records and submit written remarks",
        "Знакомиться с протоколом судебного заседания и подавать на него замечания",
        "Сот отырысының хаттамасымен танысу және оған ескертулер беру",
    ),
    Right(
        "appeal_judicial_acts",
        "CPC art. 58",
        "Appeal decisions, rulings and orders of the court",
        "Обжаловать решения, определения и постановления суда",
        "Соттың шешімдеріне, ұйғарымдарына және қаулыларына шағым жасау",
    ),
    Right(
        "conclude_settlement",
        "CPC art. 58",
        "Conclude an amicable agreement or a mediation agreement",
        "Заключать мировое соглашение или соглашение об урегулировании спора в порядке медиации",
        "Татуласу келісімін немесе медиация тәртібімен дауды реттеу туралы келісім жасасу",
    ),
    Right(
        "transfer_authority",
        "CPC art. 58",
        "Transfer the authority to another person (substitution)",
        "Передавать полномочия другому лицу (передоверие)",
        "Өкілеттіктерді басқа адамға беру (сенімді қайта тапсыру)",
    ),
    Right(
        "submit_enforcement_document",
        "CPC art. 58",
        "Present the enforcement document for execution",
        "Предъявлять исполнительный документ к исполнению",
        "Атқарушылық құжатты орындауға ұсыну",
    ),
    Right(
        "receive_awarded_property",
        "CPC art. 58",
        "Receive awarded property or money",
        "Получать присужденное имущество или деньги",
        "Берілген мүлікті немесе ақшаны алу",
    ),
)

BY_CODE: dict[str, Right] = {right.code: right for right in CATALOGUE}


def parse_rights(codes: object) -> list[str]:
    """Validate a list of right codes: at least one, all known, none twice."""
    if not isinstance(codes, list):
        raise InvalidInputError(
            f"rights: a list of right codes is required, got {codes!r}; see GET /v1/rights"
        )
    if not codes:
        raise InvalidInputError("rights: at least one right is required")
    unknown = [code for code in codes if not isinstance(code, str) or code not in BY_CODE]
    if unknown:
        raise InvalidInputError(f"rights: unknown right(s) {unknown!r}; see GET /v1/rights")
    if len(set(codes)) != len(codes):
        raise InvalidInputError("rights: a right is listed twice")
    return [str(code) for code in codes]
