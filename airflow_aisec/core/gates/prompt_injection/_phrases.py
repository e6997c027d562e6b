"""Phrase rules: instruction override, role reassignment, jailbreak personas, system-prompt extraction.

Templates use the dialect of :mod:`._pattern` (``~`` separators, ``%`` optional separators, ``'``
any apostrophe) and are matched case-insensitively on normalised text (:func:`._unicode.normalise`).

Precision comes from the shape of each pattern rather than from single words: a verb alone
("ignore") is never enough; it must govern an object that only makes sense addressed to a model
("all previous instructions", "your system prompt") or carry a determiner that does ("ignore *all*
instructions"). Third-person descriptions ("the attack makes the model ignore its instructions"),
past tenses and gerunds do not match; a weak form ("ignore the previous instructions") inside a
conditional sentence ("if you use conda, ignore the previous instructions") is not counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from airflow_aisec.core.gates.prompt_injection._pattern import compile_template, head, to_re2

# ------------------------------------------------------------------------------------------------
# English
# ------------------------------------------------------------------------------------------------
_V = (r"(?:ignore|disregard|forget|override|overrule|bypass|neglect|abandon|discard|set~aside|throw~(?:out|away)"
      r"|scrap|ditch"
      r"|(?:do~not|don't|never|no~longer)~(?:follow|obey|adhere~to|comply~with|listen~to)"
      r"|stop~(?:following|obeying|adhering~to))")
_DET_ALL = r"(?:all|any|every|each)(?:~of)?~(?:(?:the|your|ur|my|these|those|its|this|that)~)?"
_YOUR = r"(?:your|ur|yr)"
# Qualifiers that make "the ... instructions" mean a model's instructions (weak form).
_Q_WEAK = (r"(?:previous|previously~given|prior|above|earlier|preceding|foregoing|initial|original|system|safety"
           r"|developer|hidden|(?:pre-?)?programmed|built-?in)")
_Q = (r"(?:previous|previously~given|prior|above|earlier|preceding|foregoing|former|initial|original|old"
      r"|existing|current|given|default|standing|system|safety|developer|hidden|(?:pre-?)?programmed"
      r"|built-?in)")
_O_STRONG = (r"(?:instructions?|prompts?|directives?|guidelines|guardrails|programming|system~prompt"
             r"|system~message|safeguards|safety~(?:rules|guidelines|filters|measures))")
_O_WEAK = r"(?:rules|commands?|constraints|restrictions|limitations|directions|orders|policies|context)"
_AI = (r"(?:AI|A\.I\.|LLM|large~language~model|language~model|AI~(?:assistant|model|agent|system)|assistant"
       r"|chatbot|chat~bot|GPT|bot|agent)")

_EN_OVERRIDE_STRONG = [
    rf"\b{_V}~{_DET_ALL}(?:{_Q}~)*{_O_STRONG}\b",
    rf"\b{_V}~{_DET_ALL}(?:{_Q}~)+{_O_WEAK}\b",
    rf"\b{_V}~(?:all|any)~(?:of~)?{_YOUR}~(?:{_Q}~)*{_O_WEAK}\b",
    rf"\b{_V}~{_YOUR}~(?:{_Q}~)*(?:{_O_STRONG}|{_O_WEAK})\b",
    (rf"\b{_V}~(?:whatever|any|all~the|all|the)~(?:{_Q}~)*(?:{_O_STRONG}|{_O_WEAK})~(?:that~)?you~"
    r"(?:were|'ve~been|have~been|had~been|got|received|were~just)(?:~(?:given|told|taught|handed|fed))?\b"),
    rf"\b{_V}~the~(?:{_O_STRONG}|{_O_WEAK})~(?:in|from|of)~{_YOUR}~(?:system|initial|original|hidden|developer)",
    (r"\b(?:the~|all~|your~)?(?:previous|prior|earlier|above|original|system|old)~(?:instructions|directives|rules"
     r"|guidelines|prompts?)(?:~(?:you~(?:were~given|received|got|have~been~given)))?~(?:are|is|were|have~been)~"
     r"(?:now~|hereby~)?(?:void|null|cancel(?:l)?ed|revoked|overridden|nullified)\b"),
    (r"\b(?:instructions|directives|rules|guidelines)~you~(?:were~given|received|got|have~been~given)~"
     r"(?:(?:earlier|before|previously)~)?(?:are|were|have~been)~(?:now~|hereby~)?(?:void|null|cancel(?:l)?ed"
     r"|revoked|overridden|nullified)\b"),
    (rf"\b{_V}~(?:everything|anything|all)~(?:(?:that~)?(?:you~(?:'ve~|have~|were~|had~)?(?:been~)?"
     r"(?:told|given|instructed|taught|programmed)(?!~about)"
     r"|I~(?:said|told~you|wrote)(?:~(?:before|above|earlier|previously))?"
     r"|(?:(?:written|said|stated|mentioned)~)?(?:above|before~this|previously|so~far|up~to~now|until~now"
     r"|prior~to~this)))\b"),
    r"\b(?:new|updated|revised)~system~(?:prompt|instructions?)%:",
    rf"\b(?:note|notice|message|instructions?|attention|important)~(?:for|to)~(?:the~|any~|all~)?{_AI}s?%[:\-\u2014,]",
    rf"\b(?:attention|note|notice)%,?~(?:the~|all~|any~)?{_AI}s?%[:!]",
    (rf"\bif~you~are~(?:an?~)?{_AI}(?:~(?:reading|processing|summari[sz]ing|parsing|reviewing|analy[sz]ing"
     r"|that~(?:reads|is~reading)|who~(?:reads|is~reading))\b|%,)"),
]
# Weak forms: only counted outside conditional sentences (see _conditional).
_EN_OVERRIDE_WEAK = [
    (rf"\b{_V}~(?:(?:the|these|those|my|this|that)~)?(?:{_Q_WEAK}~)+(?:{_O_STRONG}|{_O_WEAK})\b"
     r"(?!(?:~|%,%)(?:if|unless|when|once|in~case|for~(?:the~)?(?:old|older|previous|legacy|earlier)))"),
    (rf"\b{_V}~(?:(?:all|everything)~)?(?:of~)?(?:the~)?(?:above|foregoing|preceding|previous|prior)"
     r"(?:~(?:text|message|messages|content|prompt|conversation|context|input|lines?))?%[,.;:!\-\u2014]*%"
     r"(?:and|then|instead|now|&)\b"),
]

_EN_ROLE = [
    (r"\byou~are~no~longer~(?:an?~)?(?:AI|assistant|chatbot|language~model|LLM|ChatGPT|GPT|Claude|bound~by"
     r"|restricted|limited~by|constrained~by|required~to~follow|subject~to|a~helpful)"),
    (r"\b(?:from~now~on|starting~now|starting~from~now|henceforth|for~the~rest~of~(?:this|the|our)~"
     r"(?:conversation|chat|session))%,?~you~(?:(?:will|must|shall|should|are~going~to|are~to)~)?"
     r"(?:only~|always~|now~)?(?:act|behave|respond|answer|reply|pretend|roleplay|role-play|simulate|speak|talk)~"
     r"(?:as|like|in~the~(?:role|voice|style)~of|without|only|with~no|freely)\b"),
    (r"\b(?:from~now~on|starting~now|henceforth)%,?~you~(?:are|will~be|shall~be|'re)~(?:(?:now|an?|the|my)~)*"
     r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral|unethical|unbound|DAN\b|no~longer"
     r"|free~(?:from|of)|(?:new|different)~(?:AI|assistant|model|chatbot|persona)|AI~(?:without|with~no|that))"),
    (r"\byou(?:~are|'re)~now~(?:(?:an?|the|my|in)~)*(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|amoral"
     r"|unethical|unbound|liberated|DAN\b|(?:god|jailbreak|unrestricted|sudo|DAN|evil|unfiltered|uncensored)~mode"
     r"|free~(?:from|of)~(?:all~|any~|your~)?(?:rules|restrictions|constraints|guidelines|programming|limitations"
     r"|censorship|filters)|(?:new|different)~(?:AI|assistant|model|chatbot|persona)"
     r"|(?:AI|assistant|model|chatbot)~(?:without|with~no|that~(?:has~no|ignores|can~do~anything)))"),
    (r"\b(?:act|behave|respond|answer|reply|pretend|roleplay|role-play|function|operate)~"
     r"(?:as~if~you~(?:are|were)~|as~(?:though~you~(?:are|were)~)?|like~)(?:an?~)?(?:unrestricted|unfiltered"
     r"|uncensored|jailbroken|evil|rogue|amoral|unethical|DAN\b|(?:AI|assistant|model|chatbot|language~model|LLM)~"
     r"(?:without|with~no|that~(?:has~no|ignores|doesn't~follow|does~not~follow|can~do~anything)|free~(?:from|of)))"),
    (r"\bpretend~(?:that~)?(?:you~(?:are|were|have)|to~(?:be|have))~(?:not~(?:an?~)?(?:AI|assistant|language~model"
     r"|chatbot|bound)|no~(?:rules|restrictions|limits|limitations|guidelines|filters|ethics|morals|ethical|moral"
     r"|content~(?:policy|policies|filters)|safety)|(?:an?~)?(?:unrestricted|unfiltered|uncensored|jailbroken|evil"
     r"|rogue|amoral|unethical)|been~(?:freed|jailbroken|unlocked|liberated))"),
    r"\b(?:I~am|I'm|this~is)~your~(?:new~)?(?:developer|creator|programmer|operator|master)\b",
]

_EN_PERSONA = [
    (r"\b(?:enable|enter|activate|switch~to|switch~into|go~into|turn~on|engage|unlock|initiate)~(?:the~)?"
     r"(?:jailbreak|jailbroken|unrestricted|unfiltered|uncensored|DAN|no-?limits?|no-?restrictions?)~mode\b"),
    (r"\b(?:you~are|you're|act~as|become|pretend~to~be|now)~(?:an?~)?jailbroken\b"
     r"|\bjailbreak~(?:mode|enabled|activated|successful)\b"
     r"|\b(?:you~have|you've)~been~(?:jailbroken|freed|liberated|unshackled)\b"),
    (r"\b(?:unfiltered~and~amoral|always~intelligent~and~machiavellian|strive~to~avoid~norms|evil~confidant"
     r"|mongo~tom|BetterDAN|AntiGPT)\b"
     r"|\b(?:two|2)~(?:responses|answers|different~responses|different~answers)~(?:to~every|for~(?:each|every))"
     r"|\U0001f513%(?:JAILBREAK|Developer~Mode~Output)"),
    (r"\byou~(?:are|'re|will~be|must~be|have~become|are~now)~(?:(?:completely|totally|now)~)?"
     r"(?:free~(?:of|from)|not~bound~by|unbound~by|no~longer~bound~by|released~from|liberated~from)"
     r"(?:~any)?~(?:(?:the|your|all|OpenAI's|OpenAI|Anthropic's|Anthropic|typical|usual)~)*"
     r"(?:(?:ethical|moral|content|safety|AI)~)?(?:guidelines|restrictions|filters|policies|policy|constraints"
     r"|boundaries|principles|limitations|rules|confines|censorship)\b"),
]

_X_VERB = (r"(?:reveal|show|print|output|display|repeat|recite|disclose|leak|dump|expose|share|write~(?:out|down)"
           r"|spell~out|copy|paste|return|give|tell|list|provide|echo|type~out|state|reproduce|divulge|send|quote"
           r"|translate|summari[sz]e|paraphrase|rewrite|encode|convert)")
# "the exact text of", "the contents of", "everything in"
_X_OF = r"(?:(?:the~)?(?:(?:exact|full|complete|entire|whole|original|verbatim|raw)~)*(?:text|contents?|wording|words)~of~|everything~in~)?"
_X_Q = (r"(?:full|complete|entire|exact|original|initial|hidden|secret|confidential|internal|verbatim|raw|whole"
        r"|first|system|underlying|current|actual|real|preceding|previous|prior)")
_X_OBJ = (r"(?:system~(?:prompt|message|instructions?|directives?|configuration)|pre-?prompt|meta-?prompt"
          r"|(?:initial|original|hidden|secret|confidential|developer|verbatim)~(?:prompt|instructions|message"
          r"|directives|rules))")
_EN_EXTRACT = [
    rf"\b{_X_VERB}(?:~(?:me|us))?~(?:(?:all|back|again)~)?(?:of~)?{_X_OF}{_YOUR}~(?:{_X_Q}~){{0,2}}{_X_OBJ}\b",
    (r"\b(?:reveal|disclose|leak|dump|recite|divulge|expose|repeat|reproduce)(?:~(?:me|us))?~(?:(?:all|back)~)?"
     rf"(?:of~)?(?:your~(?:{_X_Q}~){{0,2}}(?:instructions|rules|guidelines|directives|configuration|prompt"
     rf"|programming)|the~(?:{_X_Q}~){{0,2}}{_X_OBJ})\b"),
    (rf"\bwhat~(?:is|are|was|were)~your~(?:{_X_Q}~){{0,2}}(?:system~prompt|system~message|instructions"
     r"|(?:initial|original|hidden|secret)~(?:prompt|instructions))\b"),
    (r"\b(?:repeat|print|output|echo|copy|write|recite|reproduce|return)~(?:back~)?(?:everything|all~(?:of~)?"
     r"(?:the~)?(?:text|words|content)|the~(?:text|words|content|message|lines?))~(?:above|before~(?:this|my)"
     r"|that~(?:came|comes|appears)~before|prior~to~this|preceding|from~the~(?:beginning|start))\b"),
    r"\b(?:starting|beginning)~(?:with|from)~(?:the~(?:words?|phrase)~)?[\"'\u201c\u2018]?%You~are\b",
    (r"\bwhat~(?:were~you|have~you~been)~(?:told|instructed|programmed|asked)~(?:to~do~)?(?:before~(?:this|our|the)"
     r"|at~the~(?:start|beginning)|initially|originally|earlier|previously)"),
]

# ------------------------------------------------------------------------------------------------
# Spanish
# ------------------------------------------------------------------------------------------------
_V_ES = (r"(?:ignora|ignore|ignoren|ignorad|ignorar|olvida|olvide|olviden|olvidad|olvidar|omite|omita|omitan"
         r"|descarta|descarte|desestima|desobedece|desobedezca|pasa~por~alto|no~(?:sigas|siga|sigan|obedezcas"
         r"|obedezca|hagas~caso~(?:a|de))|deja~de~(?:seguir|obedecer)|haz~caso~omiso~(?:a|de))")
_PLEASE_ES = r"(?:~por~favor)?"
_NOUN_ES = (r"(?:instrucciones|instrucci[\u00f3o]n|indicaciones|[\u00f3o]rdenes|reglas|directrices|normas|directivas"
            r"|restricciones|consignas|pautas|prompt|mensaje~del~sistema)")
_POST_ES = (r"(?:anteriores|previas|precedentes|de~arriba|originales|iniciales|del~sistema|de~seguridad"
            r"|que~(?:te|se~te|le|se~le)~(?:dieron|han~dado|ha~dado|dio|di|dimos|hayan~dado))")
_ES_OVERRIDE_STRONG = [
    (rf"\b{_V_ES}{_PLEASE_ES}~(?:tod[ao]s~(?:l[ao]s~|tus~|sus~|est[ao]s~)?|tus~|sus~|cualquier~|cualesquiera~)"
     rf"(?:(?:anteriores|previas|primeras)~)?{_NOUN_ES}\b"),
    (r"\b(?:olvida|olvide|olvidad|ignora|ignore|ignorad)~(?:todo~)?lo~(?:anterior|de~arriba|que~(?:te|se~te)~"
     r"(?:dijeron|han~dicho|ha~dicho|dije|he~dicho|indicaron))\b"),
    r"\bsi~eres~(?:una?~)?(?:IA|inteligencia~artificial|modelo~de~lenguaje|asistente~de~IA|chatbot|LLM)\b%,",
    (r"\b(?:nota|mensaje|instrucciones?)~(?:para|a)~(?:la~|el~)?(?:IA|asistente~de~IA|modelo~de~lenguaje|LLM"
     r"|chatbot)%[:\-\u2014,]"),
]
_ES_OVERRIDE_WEAK = [
    rf"\b{_V_ES}{_PLEASE_ES}~(?:(?:l[ao]s|est[ao]s|es[ao]s)~)?(?:(?:anteriores|previas)~)?{_NOUN_ES}~{_POST_ES}\b",
]
_ES_ROLE = [
    (r"\b(?:a~partir~de~ahora|desde~ahora|de~ahora~en~adelante)%,?~(?:t[\u00fau]~)?(?:eres|ser[\u00e1a]s)~"
     r"(?:DAN\b|una?~(?:IA|inteligencia~artificial|asistente|modelo|chatbot|bot)~(?:sin|libre|malvad|que~no))"),
    r"\b(?:ahora|ya)~eres~(?:DAN\b|una?~(?:IA|asistente|modelo|chatbot)~(?:sin|libre|malvad|que~no))",
    r"\bya~no~eres~(?:una?~)?(?:IA|inteligencia~artificial|asistente|modelo~de~lenguaje|chatbot|ChatGPT)\b",
    (r"\b(?:act[\u00fau]a|actuar[\u00e1a]s|comp[\u00f3o]rtate|responde|finge~ser|haz~como~si~fueras)~(?:como~)?"
     r"(?:si~fueras~)?(?:una?~)?(?:IA|asistente|modelo|chatbot)~(?:sin|libre~de|que~no~(?:tiene|sigue))"),
    (r"\bfinge~(?:que~)?(?:no~tienes~(?:reglas|restricciones|l[\u00edi]mites|filtros|[\u00e9e]tica|normas)"
     r"|eres~una?~(?:IA|asistente|modelo)~sin)"),
    (r"\b(?:a~partir~de~ahora|de~ahora~en~adelante)%,?~(?:responder[\u00e1a]s|actuar[\u00e1a]s|act[\u00fau]a"
     r"|responde)~(?:como|sin|solo|[\u00fau]nicamente)\b"),
]
_XV_ES = (r"(?:mu[\u00e9e]strame|muestra|muestre|rev[\u00e9e]lame|revela|revele|repite|repita|dime|d[\u00edi]game"
          r"|imprime|escribe|comparte|copia|divulga|ens[\u00e9e][\u00f1n]ame|cu[\u00e9e]ntame|dame|proporciona)")
_ES_EXTRACT = [
    (rf"\b{_XV_ES}~(?:tu|tus|su|sus)~(?:(?:instrucciones|indicaciones|reglas|directrices)~(?:del~sistema"
     r"|iniciales|originales|ocultas|secretas|completas|internas)|prompt(?:~del~sistema|~de~sistema|~inicial"
     r"|~original)?|mensaje~(?:del~sistema|de~sistema|inicial)|instrucciones)\b"),
    (rf"\b{_XV_ES}~(?:el|las|los)~(?:prompt|mensaje|instrucciones)~(?:del~sistema|de~sistema|iniciales"
     r"|originales|ocultas|secretas)\b"),
    (r"\bcu[\u00e1a]l(?:es)?~(?:es|son|era|eran)~tus?~(?:(?:prompt|instrucciones|reglas)~(?:del~sistema|de~sistema"
     r"|iniciales|originales|ocultas|secretas)|instrucciones)\b"),
    r"\brepite~(?:todo~)?(?:el~texto|las~palabras|todo)~(?:anterior|de~arriba|que~aparece~(?:arriba|antes))",
]

# ------------------------------------------------------------------------------------------------
# French
# ------------------------------------------------------------------------------------------------
_V_FR = (r"(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|n'%(?:tiens|tenez)~(?:pas|plus)~compte"
         r"|ne~(?:tiens|tenez)~(?:pas|plus)~compte|fais~abstraction|faites~abstraction"
         r"|ne~(?:suis|suivez|respecte|respectez)~(?:pas|plus)|n'%ob[\u00e9e]is(?:sez)?~(?:pas|plus)"
         r"|d[\u00e9e]sob[\u00e9e]is|d[\u00e9e]sob[\u00e9e]issez|outrepasse|outrepassez|contourne|contournez"
         r"|passe~outre|passez~outre)")
_CONN_FR = r"(?:~(?:de|des|du|\u00e0|aux)|~d'%)?"
_NOUN_FR = (r"(?:instructions?|consignes?|r[\u00e8e]gles?|directives?|ordres|indications|restrictions|contraintes"
            r"|limites|prompt|message~syst[\u00e8e]me|invite~syst[\u00e8e]me)")
_POST_FR = (r"(?:pr[\u00e9e]c[\u00e9e]dentes|ci-dessus|ci~dessus|plus~haut|ant[\u00e9e]rieures|initiales"
            r"|originales|d'origine|du~syst[\u00e8e]me|syst[\u00e8e]me|de~s[\u00e9e]curit[\u00e9e]"
            r"|qu'on~(?:t'a|vous~a)~donn[\u00e9e]es|que~(?:l')?on~(?:t'a|vous~a)~donn[\u00e9e]es"
            r"|re[\u00e7c]ues)")
_PLEASE_FR = r"(?:%,?~s'il~(?:te|vous)~pla[\u00eei]t%,?)?"
_FR_OVERRIDE_STRONG = [
    (rf"\b{_V_FR}{_PLEASE_FR}{_CONN_FR}~(?:toutes~(?:les~|tes~|vos~|ces~)?|tous~(?:les~|tes~|vos~|ces~)?|tes~|vos~)"
     rf"(?:(?:pr[\u00e9e]c[\u00e9e]dentes|anciennes|premi[\u00e8e]res)~)?{_NOUN_FR}\b"),
    (r"\b(?:oublie|oubliez|ignore|ignorez)~tout~(?:ce~qui~(?:pr[\u00e9e]c[\u00e8e]de|est~(?:au-dessus|ci-dessus"
     r"|plus~haut))|ce~(?:qu'on~t'a|que~(?:l')?on~(?:t'a|vous~a)|qu'on~vous~a)~(?:dit|demand[\u00e9e]|appris)"
     r"(?!~(?:sur|au~sujet))|ce~que~je~(?:t'ai|vous~ai)~dit)"),
    (r"\bsi~(?:tu~es|vous~[\u00eae]tes)~(?:une?~)?(?:IA|intelligence~artificielle|mod[\u00e8e]le~de~langage"
     r"|assistant|chatbot|LLM)\b%,"),
    (r"\b(?:note|message|instructions?)~(?:pour|[\u00e0a])~(?:l'|la~|le~)?%(?:IA|assistant~IA"
     r"|mod[\u00e8e]le~de~langage|LLM|chatbot)%[:\-\u2014,]"),
]
_FR_OVERRIDE_WEAK = [
    (rf"\b{_V_FR}{_PLEASE_FR}{_CONN_FR}(?:~(?:les|ces|des))?~(?:(?:pr[\u00e9e]c[\u00e9e]dentes|anciennes)~)?"
     rf"{_NOUN_FR}~{_POST_FR}"),
]
_FR_ROLE = [
    (r"\b(?:tu~es|vous~[\u00eae]tes)~(?:maintenant|d[\u00e9e]sormais|[\u00e0a]~pr[\u00e9e]sent)~(?:DAN\b"
     r"|une?~(?:IA|intelligence~artificielle|assistant|mod[\u00e8e]le|chatbot)~(?:sans|libre|lib[\u00e9e]r[\u00e9e]"
     r"|mal[\u00e9e]fique|qui~n'a))"),
    (r"\b(?:tu~n'es|vous~n'[\u00eae]tes)~plus~(?:une?~)?(?:IA|intelligence~artificielle|assistant"
     r"|mod[\u00e8e]le~de~langage|chatbot|ChatGPT|soumis|li[\u00e9e])\b"),
    (r"\b(?:fais|faites)~comme~si~(?:tu~n'avais|vous~n'aviez)~(?:aucune?|pas~de)~(?:r[\u00e8e]gles?|restrictions?"
     r"|limites?|filtres?|contraintes?|censure|[\u00e9e]thique)"),
    (r"\b(?:agis|agissez|comporte-toi|comportez-vous|comporte~toi|r[\u00e9e]ponds|r[\u00e9e]pondez)~comme~"
     r"(?:si~(?:tu~[\u00e9e]tais|vous~[\u00e9e]tiez)~)?(?:une?~)?(?:IA|assistant|mod[\u00e8e]le|chatbot)~"
     r"(?:sans|libre|qui~n'a)"),
    (r"\b(?:[\u00e0a]~partir~de~maintenant|d[\u00e9e]sormais|dor[\u00e9e]navant)%,?~(?:tu~(?:es|vas|dois"
     r"|r[\u00e9e]pondras|agiras)|vous~(?:[\u00eae]tes|allez|devez|r[\u00e9e]pondrez|agirez))~"
     r"(?:(?:agir|r[\u00e9e]pondre|te~comporter|vous~comporter)~)?(?:comme|en~tant~que|sans)~(?:une?~)?"
     r"(?:DAN\b|IA|assistant|mod[\u00e8e]le|chatbot|personnage|aucune?)"),
]
_XV_FR = (r"(?:montre|montrez|montre-moi|montrez-moi|r[\u00e9e]v[\u00e8e]le|r[\u00e9e]v[\u00e9e]lez|r[\u00e9e]p[\u00e8e]te"
          r"|r[\u00e9e]p[\u00e9e]tez|affiche|affichez|donne|donnez|donne-moi|donnez-moi|dis-moi|dites-moi"
          r"|[\u00e9e]cris|[\u00e9e]crivez|imprime|imprimez|divulgue|divulguez|partage|partagez|recopie|recopiez"
          r"|cite|citez)")
_FR_EXTRACT = [
    (rf"\b{_XV_FR}(?:~moi)?~(?:ton|tes|votre|vos)~(?:prompt(?:~syst[\u00e8e]me|~initial|~d'origine)?"
     r"|message~(?:syst[\u00e8e]me|initial)|instructions|consignes(?:~initiales|~syst[\u00e8e]me|~cach[\u00e9e]es)?"
     r"|invite~syst[\u00e8e]me|r[\u00e8e]gles~(?:internes|cach[\u00e9e]es|secr[\u00e8e]tes|syst[\u00e8e]me))\b"),
    (rf"\b{_XV_FR}(?:~moi)?~(?:le|les)~(?:prompt|message|instructions|consignes)~(?:syst[\u00e8e]me"
     r"|du~syst[\u00e8e]me|initial(?:es)?|d'origine|originales?|cach[\u00e9e]es?|secr[\u00e8e]tes?)\b"),
    (r"\bquel(?:le)?s?~(?:est|sont|[\u00e9e]tait|[\u00e9e]taient)~(?:ton|tes|votre|vos)~"
     r"(?:prompt~syst[\u00e8e]me|prompt|instructions|consignes|message~syst[\u00e8e]me)\b"),
    (r"\br[\u00e9e]p[\u00e8e]te(?:z)?~(?:tout~)?(?:le~texte|les~mots|tout)~(?:ci-dessus|pr[\u00e9e]c[\u00e9e]dent"
     r"|au-dessus|plus~haut|qui~pr[\u00e9e]c[\u00e8e]de)"),
]

# ------------------------------------------------------------------------------------------------
# German
# ------------------------------------------------------------------------------------------------
_V_DE = (r"(?:ignoriere|ignorier|ignorieren~sie|ignoriert|vergiss|vergesst|vergessen~sie|missachte"
         r"|missachten~sie|[\u00fcu]bergehe|[\u00fcu]bergehen~sie|umgehe|umgehen~sie|verwirf|verwerfen~sie"
         r"|befolge~(?:nicht|keine)|befolgen~sie~(?:nicht|keine)|folge~nicht|halte~dich~nicht~an"
         r"|halten~sie~sich~nicht~an|setze~dich~[\u00fcu]ber|setzen~sie~sich~[\u00fcu]ber)")
_PLEASE_DE = r"(?:%,?~(?:bitte|jetzt|nun|einfach|sofort)%,?)*"
_QUAL_DE = (r"(?:vorherigen|vorigen|bisherigen|obigen|vorangegangenen|vorhergehenden|fr[\u00fcu]heren"
            r"|urspr[\u00fcu]nglichen|alten|bestehenden|gegebenen|anf[\u00e4a]nglichen|ersten|oben~genannten"
            r"|oben~stehenden|internen|geheimen)")
_NOUN_DE = (r"(?:anweisungen|anweisung|instruktionen|anordnungen|regeln|richtlinien|befehle|vorgaben"
            r"|system-?anweisungen|system-?prompts?|einschr[\u00e4a]nkungen|beschr[\u00e4a]nkungen|sicherheitsregeln"
            r"|sicherheitsrichtlinien|vorschriften|direktiven)")
_DE_OVERRIDE_STRONG = [
    (rf"\b{_V_DE}{_PLEASE_DE}~(?:alle|s[\u00e4a]mtliche|jegliche|deine|ihre|eure)~"
     rf"(?:(?:deine|ihre|die|diese|bisherigen)~)?(?:{_QUAL_DE}~)*{_NOUN_DE}\b"),
    (rf"\b(?:vergiss|vergesst|vergessen~sie|ignoriere|ignorieren~sie){_PLEASE_DE}~alles(?:~(?:bisherige|vorherige"
     r"|obige|bisher~gesagte)|%,?~was~(?:dir|ihnen|euch)~(?:(?:bisher|zuvor|vorher)~)?(?:gesagt|befohlen"
     r"|vorgegeben|aufgetragen|beigebracht)~(?:wurde|worden~ist)|~(?:oben|vorher|davor|bisher|zuvor))\b"),
    (r"\bwenn~(?:du|sie)~(?:eine?~)?(?:KI|k[\u00fcu]nstliche~Intelligenz|Sprachmodell|KI-Assistent|Chatbot|LLM)"
     r"~(?:bist|sind)%,"),
    (r"\b(?:Hinweis|Nachricht|Anweisungen?)~(?:an|f[\u00fcu]r)~(?:die~|das~|den~)?(?:KI|Sprachmodell|Assistenten"
     r"|LLM|Chatbot)%[:\-\u2014,]"),
]
_DE_OVERRIDE_WEAK = [
    rf"\b{_V_DE}{_PLEASE_DE}~(?:(?:die|diese|den|der)~)?(?:{_QUAL_DE}~)+{_NOUN_DE}\b",
]
_DE_ROLE = [
    (r"\b(?:du~bist|sie~sind)~(?:jetzt|nun|ab~sofort|ab~jetzt|fortan|von~nun~an)~(?:DAN\b|eine?~(?:KI|AI"
     r"|Assistent|Modell|Chatbot|Sprachmodell)~(?:ohne|die~keine|der~keine|frei|befreit))"),
    (r"\b(?:du~bist|sie~sind)~(?:keine?~(?:KI|AI|Assistent|Sprachmodell|Chatbot)~mehr|nicht~mehr~(?:an~)?"
     r"(?:eine?~)?(?:KI|AI|Assistent|Sprachmodell|Chatbot|gebunden|eingeschr[\u00e4a]nkt))"),
    (r"\b(?:tu|tun~sie)~so%,?~als~(?:ob~)?(?:du|sie)~(?:keine~(?:Regeln|Einschr[\u00e4a]nkungen|Grenzen"
     r"|Richtlinien|Filter|Ethik|Zensur)|nicht~(?:eine~)?KI)"),
    (r"\b(?:verhalte~dich|antworte|agiere|handle|reagiere)~(?:ab~(?:jetzt|sofort)~|von~nun~an~)?(?:wie|als)~"
     r"(?:eine?~)?(?:KI|AI|Assistent|Modell|Chatbot)~ohne"),
    (r"\b(?:ab~sofort|ab~jetzt|von~nun~an|fortan)%,?~(?:bist~du|wirst~du|antwortest~du|verh[\u00e4a]ltst~du~dich"
     r"|handelst~du)~(?:(?:als|wie)~)?(?:DAN\b|eine?~(?:KI|AI|Assistent|Modell|Chatbot)~ohne|ohne~(?:jegliche~)?"
     r"(?:Regeln|Einschr[\u00e4a]nkungen|Filter|Zensur))"),
]
_XV_DE = (r"(?:zeig|zeige|zeigen~sie|verrate|verraten~sie|wiederhole|wiederholen~sie|gib|geben~sie|nenne"
          r"|nennen~sie|sag|sage|sagen~sie|schreib|schreibe|schreiben~sie|drucke|drucken~sie|teile|teilen~sie"
          r"|kopiere|kopieren~sie|gib~aus|liste|verrat)")
_DE_EXTRACT = [
    (rf"\b{_XV_DE}(?:~mir|~uns)?(?:~bitte)?~(?:deinen|deine|dein|ihren|ihre|ihr|euren|eure)~"
     r"(?:(?:kompletten|vollst[\u00e4a]ndigen|genauen|urspr[\u00fcu]nglichen|geheimen|versteckten|internen|ersten"
     r"|gesamten)~)*(?:system-?prompt|systemnachricht|system-?anweisungen|anweisungen|instruktionen|prompt"
     r"|vorgaben)\b"),
    (rf"\b{_XV_DE}(?:~mir|~uns)?(?:~bitte)?~(?:den|die|das)~(?:system-?prompt|systemnachricht|system-?anweisungen"
     r"|(?:urspr[\u00fcu]nglichen|geheimen|versteckten|internen)~(?:anweisungen|prompt|instruktionen))\b"),
    (r"\bwas~(?:ist|sind|war|waren|lautet|lauten)~(?:dein|deine|ihr|ihre)~(?:system-?prompt|anweisungen"
     r"|instruktionen|vorgaben|systemnachricht)\b"),
    (r"\bwiederhole(?:n~sie)?~(?:den~)?(?:(?:gesamten|ganzen)~)?(?:text|alles|die~w[\u00f6o]rter)~(?:oben|dar[\u00fcu]ber"
     r"|davor|von~oben|vor~dieser~nachricht)"),
]

# ------------------------------------------------------------------------------------------------
# Coded checks (proximity): a trigger and jailbreak vocabulary within a window.
# ------------------------------------------------------------------------------------------------
_WINDOW = 300
_DEV_MODE = compile_template(r"\b(?:developer~mode|modo~(?:de~)?desarrollador|mode~d[\u00e9e]veloppeur"
                             r"|entwickler-?modus)\b")
_DEV_VOCAB = compile_template(
    r"\b(?:chatgpt|openai|content~polic(?:y|ies)|censor(?:ed|ship)?|uncensored|two~responses|normal~response"
    r"|(?:no|without|any)~restrictions|ignore~(?:all|your|the|any)|as~an~AI|as~a~language~model|jailbr\w*"
    r"|unfiltered|explicit|offensive|profanity|pretend|simulate|act~as|you~are~(?:now~)?in|restricciones"
    r"|sin~filtros|sans~restrictions|ohne~(?:einschr[\u00e4a]nkungen|filter|zensur))\b|\U0001f513")
_DAN = re.compile(r"\bDAN\b")
# DAN prompts address the model ("you", "act as", "stay in character"); articles about them do not.
_DAN_VOCAB = compile_template(
    r"\b(?:you|your|act~as|pretend|stay~in~character|from~now~on|immerse|DAN~mode|as~DAN)\b")
_DANOW = compile_template(r"\bdo~anything~now\b")
_DANOW_VOCAB = compile_template(
    r"\b(?:chatgpt|openai|language~model|AI~model|restrictions|content~polic(?:y|ies)|filters?|censor\w*"
    r"|broken~free|confines)\b")


def _near(text: str, anchor: re.Pattern[str], vocab: re.Pattern[str]) -> bool:
    for match in anchor.finditer(text):
        window = text[max(0, match.start() - _WINDOW):match.end() + _WINDOW]
        if vocab.search(window):
            return True
    return False


def _developer_mode(text: str) -> bool:
    return _near(text, _DEV_MODE, _DEV_VOCAB)


def _dan(text: str) -> bool:
    return _near(text, _DAN, _DAN_VOCAB) or _near(text, _DANOW, _DANOW_VOCAB)


_CONDITIONAL = re.compile(r"\b(?:if|when|unless|once|si|cuando|lorsque|quand|wenn|falls|sofern)\b", re.IGNORECASE)
_AI_IN_CONDITION = compile_template(
    r"\b(?:AI|IA|KI|LLM|language~model|assistant|chatbot|GPT|bot|agent|mod[\u00e8e]le|modelo|Sprachmodell)\b")
_SENTENCE_START = re.compile(r"[.!?\n][^.!?\n]*$")


def _conditional(text: str, start: int) -> bool:
    """Whether the match starting at ``start`` sits in a conditional clause not addressed to an AI."""
    head = text[max(0, start - 200):start]
    cut = _SENTENCE_START.search(head)
    clause = head[cut.start() + 1:] if cut else head
    return bool(_CONDITIONAL.search(clause)) and not _AI_IN_CONDITION.search(clause)


# ------------------------------------------------------------------------------------------------
# Assembly
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhraseRule:
    """One phrase rule for a set of languages.

    Attributes:
        name: Rule name (``instruction_override``...).
        strong: Python pattern whose matches count.
        weak: Python pattern whose matches count outside conditional clauses.
        coded: Extra checks (proximity), each with its RE2 anchors.
        anchors: RE2 patterns; every match of the rule contains a match of one of them.
        heads: Short RE2 prefixes of the anchors (every match also contains one of these).
    """

    name: str
    strong: re.Pattern[str] | None
    weak: re.Pattern[str] | None
    coded: tuple[Callable[[str], bool], ...]
    anchors: tuple[str, ...]
    heads: tuple[str, ...]

    def search(self, text: str) -> bool:
        if self.strong is not None and self.strong.search(text):
            return True
        if self.weak is not None:
            for match in self.weak.finditer(text):
                if not _conditional(text, match.start()):
                    return True
        return any(check(text) for check in self.coded)


_TEMPLATES: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "instruction_override": {
        "en": (_EN_OVERRIDE_STRONG, _EN_OVERRIDE_WEAK),
        "es": (_ES_OVERRIDE_STRONG, _ES_OVERRIDE_WEAK),
        "fr": (_FR_OVERRIDE_STRONG, _FR_OVERRIDE_WEAK),
        "de": (_DE_OVERRIDE_STRONG, _DE_OVERRIDE_WEAK),
    },
    "role_reassignment": {"en": (_EN_ROLE, []), "es": (_ES_ROLE, []), "fr": (_FR_ROLE, []), "de": (_DE_ROLE, [])},
    "jailbreak_persona": {"en": (_EN_PERSONA, [])},
    "system_prompt_extraction": {
        "en": (_EN_EXTRACT, []), "es": (_ES_EXTRACT, []), "fr": (_FR_EXTRACT, []), "de": (_DE_EXTRACT, []),
    },
}
_CODED: dict[str, tuple[tuple[Callable[[str], bool], tuple[str, ...]], ...]] = {
    "jailbreak_persona": (
        (_developer_mode, ("(?i:" + to_re2(r"developer~mode|modo~(?:de~)?desarrollador|mode~d[\u00e9e]veloppeur"
                                           r"|entwickler-?modus") + ")",)),
        (_dan, ("DAN", "(?i:" + to_re2("do~anything~now") + ")")),
    ),
}
PHRASE_RULES: tuple[str, ...] = tuple(_TEMPLATES)


def _alternation(templates: list[str]) -> str:
    return "|".join(f"(?:{t})" for t in templates)


def build_phrase_rules(languages: tuple[str, ...]) -> dict[str, PhraseRule]:
    """The phrase rules for ``languages`` (English persona patterns always apply: persona names are not translated)."""
    rules: dict[str, PhraseRule] = {}
    for name, by_lang in _TEMPLATES.items():
        strong: list[str] = []
        weak: list[str] = []
        for lang, (s, w) in by_lang.items():
            if lang in languages or name == "jailbreak_persona":
                strong.extend(s)
                weak.extend(w)
        coded = _CODED.get(name, ())
        anchors = tuple(f"(?i:{to_re2(t)})" for t in strong + weak) + tuple(a for _, an in coded for a in an)
        heads = tuple(dict.fromkeys(f"(?i:{to_re2(head(t))})" for t in strong + weak)) + tuple(
            a for _, an in coded for a in an)
        rules[name] = PhraseRule(
            name=name,
            strong=compile_template(_alternation(strong)) if strong else None,
            weak=compile_template(_alternation(weak)) if weak else None,
            coded=tuple(check for check, _ in coded),
            anchors=anchors,
            heads=heads,
        )
    return rules
