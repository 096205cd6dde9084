"""The few sentences the engine itself says to intermediaries, in their languages.

Key messages come from templates the city approves; these are the engine's own words around
them: the request to confirm a briefing, its buttons, the reminder, the note to a backup contact,
and the bot's thanks. Each exists in every language of the protocol library and in Dari; a
placeholder in a right-to-left sentence is isolated so a code or a Latin name keeps its order.
"""

from __future__ import annotations

import secrets

from playbook.delivery import Delivery
from playbook.language import lookup_key
from playbook.render import FSI, LRI, PDI, RLM, is_rtl

PHRASES: dict[str, dict[str, str]] = {
    "ack_buttons": {
        "en": "Please confirm with a button below.",
        "ar": "يُرجى التأكيد بالضغط على أحد الزرّين أدناه.",
        "es": "Por favor, confirme la recepción con uno de los botones de abajo.",
        "fr": "Merci de confirmer avec l’un des boutons ci-dessous.",
        "uk": "Будь ласка, підтвердьте отримання, натиснувши одну з кнопок нижче.",
        "fa": "لطفاً با یکی از دکمه‌های زیر تأیید کنید.",
        "fa-AF": "لطفاً با یکی از دکمه‌های زیر تأیید کنید.",
    },
    "ack_code": {
        "en": "To confirm that you received this briefing, reply with the code {code}. If you "
              "have already shared it with your community, please say so in your reply.",
        "ar": "لتأكيد استلام هذه الإحاطة، يُرجى الرد بالرمز {code}. وإن كنتم قد شاركتموها "
              "مع مجتمعكم، فنرجو ذكر ذلك في ردّكم.",
        "es": "Para confirmar que ha recibido este mensaje, responda con el código {code}. "
              "Si ya ha compartido el mensaje con su comunidad, indíquelo en su respuesta.",
        "fr": "Pour confirmer la bonne réception de ce message, répondez en indiquant le code "
              "{code}. Si vous avez déjà partagé ce message avec votre communauté, merci de le "
              "préciser dans votre réponse.",
        "uk": "Щоб підтвердити, що ви отримали це повідомлення, надішліть у відповідь код "
              "{code}. Якщо ви вже поділилися повідомленням зі своєю громадою, зазначте це, "
              "будь ласка, у відповіді.",
        "fa": "برای تأیید دریافت این پیام، لطفاً با کد {code} پاسخ دهید. اگر آن را با جامعهٔ "
              "خود در میان گذاشته‌اید، لطفاً این را هم در پاسخ‌تان بنویسید.",
        "fa-AF": "برای تأیید دریافت این پیام، لطفاً با کود {code} جواب بدهید. اگر آن را با "
                 "جامعهٔ خود شریک ساخته‌اید، لطفاً این را هم در جواب خود بنویسید.",
    },
    "button_received": {
        "en": "✅ Received", "ar": "✅ تم الاستلام", "es": "✅ Recibido", "fr": "✅ Bien reçu",
        "uk": "✅ Отримано", "fa": "✅ دریافت شد", "fa-AF": "✅ دریافت شد",
    },
    "button_shared": {
        "en": "📣 Shared with my community", "ar": "📣 شاركتها مع مجتمعي",
        "es": "📣 Compartido con mi comunidad", "fr": "📣 Partagé avec ma communauté",
        "uk": "📣 Поширено в моїй громаді", "fa": "📣 با جامعه‌ام در میان گذاشتم",
        "fa-AF": "📣 با جامعه‌ام شریک ساختم",
    },
    "reminder": {
        "en": "Reminder: we have not heard back from you yet. Please confirm that you received "
              "this briefing.",
        "ar": "تذكير: لم يصلنا ردّكم بعد. نرجو تأكيد استلام هذه الإحاطة.",
        "es": "Recordatorio: todavía no hemos recibido su respuesta. Por favor, confirme que "
              "ha recibido este mensaje.",
        "fr": "Rappel\u00a0: nous n’avons pas encore de réponse de votre part. Merci de nous "
              "confirmer que vous avez bien reçu ce message.",
        "uk": "Нагадування: ми досі не маємо від вас відповіді. Будь ласка, підтвердьте, що "
              "ви отримали це повідомлення.",
        "fa": "یادآوری: هنوز پاسخی از شما به ما نرسیده است. لطفاً دریافت این پیام را تأیید "
              "کنید.",
        "fa-AF": "یادآوری: تا هنوز جواب شما به ما نرسیده است. لطفاً دریافت این پیام را تأیید "
                 "کنید.",
    },
    "backup": {
        "en": "We are sending you this briefing because we could not reach {name}. Please "
              "confirm that you received it.",
        "ar": "نرسل إليكم هذه الإحاطة لأننا لم نتمكن من التواصل مع {name}. نرجو تأكيد "
              "استلامها.",
        "es": "Le enviamos este mensaje porque no hemos podido comunicarnos con {name}. "
              "Por favor, confirme que lo ha recibido.",
        "fr": "Nous vous transmettons ce message car nous n’avons pas pu joindre {name}. Merci "
              "de nous confirmer que vous l’avez bien reçu.",
        "uk": "Ми надсилаємо вам це повідомлення, бо нам не вдалося зв'язатися з основною "
              "контактною особою ({name}). Будь ласка, підтвердьте, що ви його отримали.",
        "fa": "این پیام را برای شما می‌فرستیم، چون نتوانستیم با {name} تماس بگیریم. لطفاً "
              "دریافت آن را تأیید کنید.",
        "fa-AF": "این پیام را به شما می‌فرستیم، چون نتوانستیم با {name} به تماس شویم. لطفاً "
                 "دریافت آن را تأیید کنید.",
    },
    "thanks_ack": {
        "en": "Thank you — your confirmation has been recorded.",
        "ar": "شكرًا لكم، تم تسجيل تأكيدكم.",
        "es": "Gracias, hemos registrado su confirmación.",
        "fr": "Merci, votre confirmation a bien été enregistrée.",
        "uk": "Дякуємо, ваше підтвердження зафіксовано.",
        "fa": "سپاسگزاریم؛ تأیید شما ثبت شد.",
        "fa-AF": "تشکر؛ تأیید شما ثبت شد.",
    },
    "thanks_relayed": {
        "en": "Thank you for sharing it with your community.",
        "ar": "شكرًا لكم على مشاركتها مع مجتمعكم.",
        "es": "Gracias por compartirlo con su comunidad.",
        "fr": "Merci de l’avoir partagé avec votre communauté.",
        "uk": "Дякуємо, що поділилися ним зі своєю громадою.",
        "fa": "سپاسگزاریم که آن را با جامعهٔ خود در میان گذاشتید.",
        "fa-AF": "تشکر از اینکه آن را با جامعهٔ خود شریک ساختید.",
    },
    "thanks_concern": {
        "en": "Thank you. Your message has been passed to the city’s community liaison, who "
              "will get back to you.",
        "ar": "شكرًا لكم. أُحيلت رسالتكم إلى مسؤول التواصل المجتمعي في البلدية، وسيردّ عليكم.",
        "es": "Gracias. Hemos transmitido su mensaje a la persona del gobierno municipal "
              "encargada del enlace con las comunidades, que se pondrá en contacto con usted.",
        "fr": "Merci. Votre message a été transmis à la personne de la Ville chargée des "
              "relations avec les communautés, qui vous recontactera.",
        "uk": "Дякуємо. Ваше повідомлення передано особі, відповідальній у міській владі за "
              "зв'язки з громадами. З вами зв'яжуться.",
        "fa": "سپاسگزاریم. پیام شما برای مسئول ارتباط با جوامع در شهرداری فرستاده شد؛ ایشان "
              "با شما تماس خواهند گرفت.",
        "fa-AF": "تشکر. پیام شما به مسئول ارتباط با جوامع در شاروالی سپرده شد؛ ایشان با شما "
                 "به تماس خواهند شد.",
    },
    "concern_empty": {
        "en": "Please write what worries you after {command}, for example: {command} People "
              "are afraid to go to the market.",
        "ar": "يُرجى كتابة ما يقلقكم بعد {command}، مثلًا: {command} الناس يخشون الذهاب إلى "
              "السوق.",
        "es": "Por favor, escriba lo que le preocupa después de {command}, por ejemplo: "
              "{command} La gente tiene miedo de ir al mercado.",
        "fr": "Merci d’écrire ce qui vous inquiète après {command}, par exemple\u00a0: "
              "{command} Les gens ont peur d’aller au marché.",
        "uk": "Будь ласка, напишіть після {command}, що вас турбує, наприклад: {command} Люди "
              "бояться ходити на ринок.",
        "fa": "لطفاً نگرانی خود را بعد از {command} بنویسید، مثلاً: {command} مردم می‌ترسند "
              "به بازار بروند.",
        "fa-AF": "لطفاً تشویش خود را بعد از {command} بنویسید، مثلاً: {command} مردم از رفتن "
                 "به بازار می‌ترسند.",
    },
    "no_incident": {
        "en": "Thank you for writing. No incident is open right now, so this line is not "
              "watched; please call {hotline}.",
        "ar": "شكرًا لتواصلكم. لا نتابع حاليًا أي حالة طارئة، ولذلك لا تُقرأ الرسائل في هذه "
              "القناة الآن؛ يُرجى الاتصال بالرقم {hotline}.",
        "es": "Gracias por escribirnos. En este momento no hay ningún incidente en curso, por "
              "lo que este canal no está atendido; por favor, llame al {hotline}.",
        "fr": "Merci de votre message. Aucun incident n’est en cours, ce canal n’est donc pas "
              "suivi\u00a0; veuillez appeler le {hotline}.",
        "uk": "Дякуємо за повідомлення. Зараз немає активного інциденту, тому цей канал не "
              "відстежується; будь ласка, зателефонуйте за номером {hotline}.",
        "fa": "از پیام شما سپاسگزاریم. در حال حاضر حادثه‌ای را پیگیری نمی‌کنیم و پیام‌های "
              "این کانال خوانده نمی‌شوند؛ لطفاً با شمارهٔ {hotline} تماس بگیرید.",
        "fa-AF": "تشکر از پیام شما. فعلاً به هیچ حادثه‌ای رسیدگی نمی‌کنیم و پیام‌های این کانال "
                 "خوانده نمی‌شود؛ لطفاً با شمارهٔ {hotline} تماس بگیرید.",
    },
    "button_stale": {
        "en": "This button is no longer valid.", "ar": "هذا الزر لم يعد صالحًا.",
        "es": "Este botón ya no es válido.", "fr": "Ce bouton n’est plus valide.",
        "uk": "Ця кнопка вже недійсна.", "fa": "این دکمه دیگر معتبر نیست.",
        "fa-AF": "این دکمه دیگر معتبر نیست.",
    },
}


def phrase(key: str, locale: str, **values: str) -> str:
    """The phrase `key` in the reader's language (their own variant first), else English.

    In a right-to-left sentence each value is isolated left to right: a code or a phone
    number keeps its order, and a name in another script cannot pull the sentence around.
    """
    lang = lookup_key(PHRASES[key], locale)
    text = PHRASES[key][lang]
    if is_rtl(lang):  # the direction of the text shown, which may be the English fallback
        values = {k: f"{LRI if _ltr(v) else FSI}{v}{PDI}" for k, v in values.items()}
    return text.format(**values)


def _ltr(value: str) -> bool:
    return all(not ("\u0590" <= ch <= "\u08ff") for ch in value)


ACK_PREFIX = "ack:"
"""Callback data of a confirmation button: `ack:<code>:r` (received) or `ack:<code>:s` (shared)."""
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""No 0/O or 1/I: a code read off a phone and typed back must survive."""


def new_code(length: int) -> str:
    """An unguessable code of `length` characters (5 bits each) from `CODE_ALPHABET`."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def show_code(token: str) -> str:
    """A confirmation code as people read it: `K7F3-Q2MX`."""
    return f"{token[:4]}-{token[4:]}"


def read_code(text: str) -> str:
    """A code as typed back (any case, dash or spaces) in the form it is stored."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def ack_request(locale: str, token: str, *, buttons: bool) -> str:
    """The line under a briefing asking for confirmation: buttons on Telegram, else a code."""
    text = (phrase("ack_buttons", locale) if buttons
            else phrase("ack_code", locale, code=show_code(token)))
    rtl = is_rtl(lookup_key(PHRASES["ack_code"], locale))
    return f"<i>{RLM if rtl else ''}{text}</i>"


def with_ack_request(delivery: Delivery, *, buttons: bool) -> str:
    """A delivery's text, with the request to confirm it if one is asked of this recipient."""
    token = delivery.meta.get("ack_token")
    if not token:
        return delivery.text
    return f"{delivery.text}\n\n{ack_request(delivery.lang, token, buttons=buttons)}"
