"""The wording of the reasons: numeric attributes' bands, Spanish attribute and label texts,
the fallback's text.
"""

from __future__ import annotations

# Bands of numeric attributes: (lowest value of the band, English label, Spanish label). The
# highest band runs to the codebook's maximum. Installment rate uses the codebook's labels.
NUMERIC_BANDS: dict[str, tuple[tuple[int, str, str], ...]] = {
    "duration_months": (
        (1, "less than 12 months", "menos de 12 meses"),
        (12, "12 to 23 months", "de 12 a 23 meses"),
        (24, "24 to 35 months", "de 24 a 35 meses"),
        (36, "36 to 47 months", "de 36 a 47 meses"),
        (48, "48 months or more", "48 meses o más"),
    ),
    "credit_amount": (
        (1, "less than 1,000 DM", "menos de 1.000 DM"),
        (1000, "1,000 to 2,499 DM", "de 1.000 a 2.499 DM"),
        (2500, "2,500 to 4,999 DM", "de 2.500 a 4.999 DM"),
        (5000, "5,000 to 9,999 DM", "de 5.000 a 9.999 DM"),
        (10000, "10,000 DM or more", "10.000 DM o más"),
    ),
    "installment_rate": (
        (1, "", ">= 35 % de la renta disponible"),
        (2, "", "de 25 a < 35 % de la renta disponible"),
        (3, "", "de 20 a < 25 % de la renta disponible"),
        (4, "", "< 20 % de la renta disponible"),
    ),
    # german.doc gives the bands of present residence no meaning beyond their order.
    "residence_since": (
        (1, "band 1 of 4", "tramo 1 de 4"),
        (2, "band 2 of 4", "tramo 2 de 4"),
        (3, "band 3 of 4", "tramo 3 de 4"),
        (4, "band 4 of 4", "tramo 4 de 4"),
    ),
    "existing_credits": (
        (1, "1 credit", "1 crédito"),
        (2, "2 or 3 credits", "2 o 3 créditos"),
        (4, "4 or more credits", "4 o más créditos"),
    ),
    "people_liable": (
        (1, "1 person", "1 persona"),
        (2, "2 or more people", "2 o más personas"),
    ),
}

# Spanish names of the attributes that may be cited, and of their codes' labels.
ATTRIBUTE_ES: dict[str, str] = {
    "checking_account_status": "Estado de la cuenta corriente",
    "duration_months": "Duración del crédito",
    "credit_history": "Historial crediticio",
    "purpose": "Finalidad del crédito",
    "credit_amount": "Importe del crédito",
    "savings_account": "Cuenta de ahorro / bonos",
    "employment_since": "Antigüedad en el empleo actual",
    "installment_rate": "Cuota en porcentaje de la renta disponible",
    "other_debtors": "Otros deudores / avalistas",
    "residence_since": "Antigüedad en la residencia actual",
    "property": "Bienes",
    "other_installment_plans": "Otros planes de pago a plazos",
    "housing": "Vivienda",
    "existing_credits": "Número de créditos vigentes en este banco",
    "job": "Empleo",
    "people_liable": "Número de personas a su cargo",
    "telephone": "Teléfono",
}
LABEL_ES: dict[str, str] = {
    "A11": "< 0 DM",
    "A12": "de 0 a < 200 DM",
    "A13": ">= 200 DM / nómina domiciliada desde hace al menos 1 año",
    "A14": "sin cuenta corriente",
    "A30": "sin créditos / todos los créditos devueltos puntualmente",
    "A31": "todos los créditos en este banco devueltos puntualmente",
    "A32": "créditos vigentes pagados puntualmente hasta ahora",
    "A33": "retrasos en los pagos en el pasado",
    "A34": "cuenta crítica / otros créditos vigentes (no en este banco)",
    "A40": "coche (nuevo)",
    "A41": "coche (usado)",
    "A42": "muebles / equipamiento",
    "A43": "radio / televisión",
    "A44": "electrodomésticos",
    "A45": "reparaciones",
    "A46": "educación",
    "A47": "vacaciones",
    "A48": "reciclaje profesional",
    "A49": "negocio",
    "A410": "otros",
    "A61": "< 100 DM",
    "A62": "de 100 a < 500 DM",
    "A63": "de 500 a < 1000 DM",
    "A64": ">= 1000 DM",
    "A65": "desconocido / sin cuenta de ahorro",
    "A71": "desempleado",
    "A72": "< 1 año",
    "A73": "de 1 a < 4 años",
    "A74": "de 4 a < 7 años",
    "A75": ">= 7 años",
    "A101": "ninguno",
    "A102": "cosolicitante",
    "A103": "avalista",
    "A121": "inmuebles",
    "A122": "contrato de ahorro-vivienda / seguro de vida",
    "A123": "coche u otros, no en cuenta de ahorro",
    "A124": "desconocido / sin bienes",
    "A141": "banco",
    "A142": "comercios",
    "A143": "ninguno",
    "A151": "alquiler",
    "A152": "propia",
    "A153": "gratuita",
    "A171": "desempleado / no cualificado, no residente",
    "A172": "no cualificado, residente",
    "A173": "empleado cualificado / funcionario",
    "A174": "directivo / autónomo / empleado muy cualificado / oficial",
    "A191": "no",
    "A192": "sí, registrado a nombre del cliente",
}
FALLBACK_TEXT = {
    "en": "No factor that may be cited explains this rejection: only attributes the service "
    "never cites (protected) raised the risk above that of approved applicants. A person must "
    "review this decision.",
    "es": "Ningún factor que pueda citarse explica este rechazo: solo atributos que el servicio "
    "nunca cita (protegidos) elevaron el riesgo por encima del de los solicitantes aprobados. "
    "Una persona debe revisar esta decisión.",
}
