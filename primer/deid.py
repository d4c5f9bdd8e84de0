"""Identifying DICOM attributes: mask them for display, strip them from a copy.

A DICOM file carries far more than pixels: who the patient is, where and when they were scanned,
who referred and who read the study, and unique identifiers (UIDs) that link the file back to a
hospital's archive. DICOM PS3.15 Annex E lists the attributes a de-identifier must act on (the
"Basic Application Level Confidentiality Profile", Table E.1-1) and what it must do to each:

    D  replace with a dummy value of the same kind      Z  empty the value (or a dummy)
    X  remove the attribute                             U  replace the UID with a new one
    "XZ", "XD", "ZD", "XZD": the de-identifier may pick  "XZU": sequences of references

This module holds that table as one constant and uses it twice:
- `metadata_rows` flattens a data set into rows of plain text for a metadata table, with every
  identifying value shown as "***" (what the app shows for any file, uploaded or bundled);
- `deidentify` writes a de-identified copy to bytes in memory (never to disk).

On top of the table we also treat as identifying: every private attribute (vendors put names and
IDs there), every person name (VR PN), date and time (VR DA/DT/TM), application entity title
(VR AE, a device's network name), and every UID that is not a registered DICOM UID (SOP class and
transfer syntax UIDs are registered, so they stay readable).

What neither function does: remove text burned into the pixels (common in ultrasound and
secondary captures; `BurnedInAnnotation` says so when the writer was honest).
"""

from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID_dictionary,
    generate_uid,
)

# DICOM PS3.15 Table E.1-1, "Basic Prof." column (edition 2024b), keyed by action. The keyword
# of every attribute is pydicom's; a test checks each resolves to a tag. Repeating-group
# attributes (Curve Data 50xx,xxxx; Overlay Data 60xx,3000 and Overlay Comments 60xx,4000)
# cannot be spelled as one keyword and are handled in `_is_repeating_group_identifier`.
_BASIC_PROFILE_SPEC: dict[str, str] = {
    "D": """
        AcquisitionFieldOfViewLabel AnnotationGroupLabel AnnotationGroupUID AssertionDateTime
        AttributeModificationDateTime BeamHoldTransitionDateTime CertificateOfSigner
        ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolID
        ClinicalTrialSponsorName ClinicalTrialSubjectID ClinicalTrialSubjectReadingID
        ContainerIdentifier ContentSequence ContextGroupLocalVersion ContextGroupVersion Date
        DateTime DecayCorrectionDateTime DestinationAE DeviceLabel DigitalSignatureDateTime
        EffectiveDateTime EncapsulatedDocument EntityLabel EntityLongLabel
        ExclusionStartDateTime FlowIdentifier FlowIdentifierSequence FrameAcquisitionDateTime
        FrameOriginTimestamp FrameReferenceDateTime FunctionalSyncPulse
        GraphicAnnotationSequence HangingProtocolCreationDateTime ImpedanceMeasurementDateTime
        InformationIssueDateTime InterlockDateTime InterlockDescription
        InterlockOriginDescription ModifyingSystem OverrideDateTime
        PersonIdentificationCodeSequence PersonName RTPlanLabel RTPrescriptionLabel
        RTToleranceSetLabel RadiationDoseIdentificationLabel RadiationDoseInVivoMeasurementLabel
        RadiationGenerationModeLabel ReasonForTheAttributeModification
        RecordedRTControlPointDateTime ReferencedDateTime SafePositionExitDate
        SafePositionExitTime SafePositionReturnDate SafePositionReturnTime SelectorAEValue
        SelectorASValue SelectorDAValue SelectorDTValue SelectorLOValue SelectorLTValue
        SelectorOBValue SelectorPNValue SelectorSHValue SelectorSTValue SelectorTMValue
        SelectorUNValue SelectorURValue SelectorUTValue SourceEndDateTime SourceIdentifier
        SourceStartDateTime SourceStrengthReferenceDate SourceStrengthReferenceTime
        SpecimenIdentifier StructureSetLabel Time TreatmentControlPointDate
        TreatmentControlPointTime TreatmentPositionGroupLabel
        TreatmentToleranceViolationDateTime TreatmentToleranceViolationDescription
        UserContentLabel UserContentLongLabel VerificationDateTime VerifyingObserverName
        VerifyingObserverSequence VerifyingOrganization XRayDetectorID XRaySourceID
    """,
    "Z": """
        AccessionNumber CalibrationDateTime ClinicalTrialCoordinatingCenterName
        ClinicalTrialProtocolName ClinicalTrialSiteID ClinicalTrialSiteName
        ClinicalTrialTimePointID ConceptualVolumeCombinationDescription
        ConceptualVolumeDescription ConsultingPhysicianName DeviceAlternateIdentifier
        FillerOrderNumberImagingServiceRequest FractionationNotes
        IssuerOfTheContainerIdentifierSequence IssuerOfTheSpecimenIdentifierSequence
        ManufacturerDeviceIdentifier ParticipationDateTime PatientBirthDate PatientName
        PatientSex PlacerOrderNumberImagingServiceRequest PrescriptionNotes
        PrescriptionNotesSequence ROIInterpreter ROIName RTAccessoryDeviceSlotID
        RTAccessoryHolderSlotID RTPhysicianIntentNarrative RadiationGenerationModeDescription
        ReasonForSuperseding ReferringPhysicianName ReviewDate ReviewTime SourceOfPreviousValues
        SpecimenPreparationSequence StructureSetDate StructureSetTime StudyDate StudyID
        StudyTime TreatmentTechniqueNotes VerifyingObserverIdentificationCodeSequence
    """,
    "X": """
        AcquisitionComments AcquisitionProtocolDescription ActualHumanPerformersSequence
        AdditionalPatientHistory AddressTrial AdmissionID AdmittingDate
        AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime Allergies
        AnnotationGroupDescription ApprovalStatusDateTime Arbitrary AssertionExpirationDateTime
        AuthorObserverSequence BeamDescription BolusDescription BranchOfService CalibrationDate
        CalibrationTime CameraOwnerName CassetteID CertifiedTimestamp
        ClinicalTrialProtocolEthicsCommitteeApprovalNumber ClinicalTrialSeriesDescription
        ClinicalTrialSeriesID ClinicalTrialTimePointDescription CommentsOnRadiationDose
        CommentsOnThePerformedProcedureStep CompensatorDescription
        ConfidentialityConstraintOnPatientDataDescription
        ConsultingPhysicianIdentificationSequence ContainerComponentID ContainerDescription
        ContentCreatorIdentificationCodeSequence ContrastBolusStartTime ContrastBolusStopTime
        ContributionDateTime ContributionDescription CountryOfResidence CreationDate
        CreationTime CurrentObserverTrial CurrentPatientLocation CurveDate CurveTime
        CustodialOrganizationSequence DataSetTrailingPadding
        DateOfDocumentOrVerbalTransactionTrial DateOfInstallation DateOfLastCalibration
        DateOfManufacture DateOfSecondaryCapture DateTimeOfLastCalibration
        DecompositionDescription DerivationDescription DeviceDescription
        DeviceSettingDescription DigitalSignaturesSequence DischargeDate
        DischargeDiagnosisDescription DischargeTime DisplacementReferenceLabel
        DistributionAddress DistributionName DoseReferenceDescription EntityDescription
        EntityName EquipmentFrameOfReferenceDescription
        EthicsCommitteeApprovalEffectivenessEndDate
        EthicsCommitteeApprovalEffectivenessStartDate EthnicGroup ExpectedCompletionDateTime
        FilterLookupTableDescription FindingsGroupRecordingDateTrial
        FindingsGroupRecordingTimeTrial FixationDeviceDescription FractionGroupDescription
        FrameComments GPSAltitude GPSAltitudeRef GPSAreaInformation GPSDOP GPSDateStamp
        GPSDestBearing GPSDestBearingRef GPSDestDistance GPSDestDistanceRef GPSDestLatitude
        GPSDestLatitudeRef GPSDestLongitude GPSDestLongitudeRef GPSDifferential GPSImgDirection
        GPSImgDirectionRef GPSLatitude GPSLatitudeRef GPSLongitude GPSLongitudeRef GPSMapDatum
        GPSMeasureMode GPSProcessingMethod GPSSatellites GPSSpeed GPSSpeedRef GPSStatus
        GPSTimeStamp GPSTrack GPSTrackRef GPSVersionID GantryID GeneratorID
        HL7DocumentEffectiveTime HumanPerformerName HumanPerformerOrganization IconImageSequence
        IdentifyingComments ImageComments ImagePresentationComments
        ImagingServiceRequestComments Impressions InstanceCoercionDateTime InstanceOriginStatus
        InstitutionAddress InstitutionalDepartmentName InstitutionalDepartmentTypeCodeSequence
        InsurancePlanIdentification IntendedFractionStartTime
        IntendedRecipientsOfResultsIdentificationSequence InterpretationApprovalDate
        InterpretationApprovalTime InterpretationApproverSequence InterpretationAuthor
        InterpretationDiagnosisDescription InterpretationID InterpretationIDIssuer
        InterpretationRecordedDate InterpretationRecordedTime InterpretationRecorder
        InterpretationText InterpretationTranscriber InterpretationTranscriptionDate
        InterpretationTranscriptionTime InterventionDrugStartTime InterventionDrugStopTime
        IssueDateOfImagingServiceRequest IssueTimeOfImagingServiceRequest IssuerOfAdmissionID
        IssuerOfAdmissionIDSequence IssuerOfClinicalTrialProtocolID
        IssuerOfClinicalTrialSeriesID IssuerOfClinicalTrialSiteID IssuerOfClinicalTrialSubjectID
        IssuerOfClinicalTrialSubjectReadingID IssuerOfClinicalTrialTimePointID IssuerOfPatientID
        IssuerOfServiceEpisodeID IssuerOfServiceEpisodeIDSequence LastMenstrualDate LensMake
        LensModel LensSerialNumber LensSpecification LongDeviceDescription MAC MakerNote
        MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
        ModifiedImageDate ModifiedImageDescription ModifiedImageTime ModifyingDeviceID
        MultienergyAcquisitionDescription NameOfPhysiciansReadingStudy
        NamesOfIntendedRecipientsOfResults NetworkID NonconformingDataElementValue
        NonconformingModifiedAttributesSequence ObservationDateTrial ObservationStartDateTime
        ObservationTimeTrial Occupation OrderCallbackPhoneNumber OrderCallbackTelecomInformation
        OrderEnteredBy OrderEntererLocation OriginalAttributesSequence Originator
        OtherClinicalTrialProtocolIDsSequence OtherPatientIDs OtherPatientIDsSequence
        OtherPatientNames OverlayDate OverlayTime ParticipantSequence PatientAddress PatientAge
        PatientBirthName PatientBirthTime PatientComments PatientInstitutionResidence
        PatientInsurancePlanCodeSequence PatientMotherBirthName
        PatientPrimaryLanguageCodeSequence PatientPrimaryLanguageModifierCodeSequence
        PatientReligiousPreference PatientSetupPhotoDescription PatientSize PatientState
        PatientTelecomInformation PatientTelephoneNumbers PatientTransportArrangements
        PatientTreatmentPreparationMethodDescription
        PatientTreatmentPreparationProcedureParameterDescription PatientWeight PerformedLocation
        PerformedProcedureStepDescription PerformedProcedureStepEndDate
        PerformedProcedureStepEndDateTime PerformedProcedureStepEndTime PerformedProcedureStepID
        PerformedProcedureStepStartDate PerformedProcedureStepStartDateTime
        PerformedProcedureStepStartTime PerformedStationAETitle
        PerformedStationGeographicLocationCodeSequence PerformedStationName
        PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence
        PerformingPhysicianName PersonAddress PersonTelecomInformation PersonTelephoneNumbers
        PhysicianApprovingInterpretation PhysiciansOfRecord
        PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence
        PlateID PositionAcquisitionTemplateDescription PositionAcquisitionTemplateName
        PreMedication PregnancyStatus PrescriptionDescription PresentationCreationDate
        PresentationCreationTime PriorTreatmentDoseDescription ProcedureStepCancellationDateTime
        ProductExpirationDateTime PyramidDescription PyramidLabel ROICreatorSequence ROIDateTime
        ROIDescription ROIGenerationDescription ROIInterpreterSequence ROIObservationDateTime
        ROIObservationDescription ROIObservationLabel RTPlanDescription RTPlanName
        RadiopharmaceuticalStartDateTime RadiopharmaceuticalStartTime
        RadiopharmaceuticalStopDateTime RadiopharmaceuticalStopTime ReasonForOmissionDescription
        ReasonForRequestedProcedureCodeSequence ReasonForStudy ReasonForTheImagingServiceRequest
        ReasonForTheRequestedProcedure ReasonForVisit ReasonForVisitCodeSequence ReceivingAE
        ReferencedDigitalSignatureSequence ReferencedPatientAliasSequence
        ReferencedPatientPhotoSequence ReferencedPatientSequence
        ReferencedSOPInstanceMACSequence ReferringPhysicianAddress
        ReferringPhysicianIdentificationSequence ReferringPhysicianTelephoneNumbers
        RegionOfResidence RequestAttributesSequence RequestedContrastAgent
        RequestedProcedureComments RequestedProcedureID RequestedProcedureLocation
        RequestedSeriesDescription RequestingAE RequestingPhysician RequestingService
        RespiratoryMotionCompensationTechniqueDescription ResponsibleOrganization
        ResponsiblePerson ResultsComments ResultsDistributionListSequence ResultsID
        ResultsIDIssuer RetrieveAETitle SOPAuthorizationDateTime ScheduledAdmissionDate
        ScheduledAdmissionTime ScheduledDischargeDate ScheduledDischargeTime
        ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
        ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
        ScheduledProcedureStepDescription ScheduledProcedureStepEndDate
        ScheduledProcedureStepEndTime ScheduledProcedureStepExpirationDateTime
        ScheduledProcedureStepID ScheduledProcedureStepLocation
        ScheduledProcedureStepModificationDateTime ScheduledProcedureStepStartDate
        ScheduledProcedureStepStartDateTime ScheduledProcedureStepStartTime
        ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence
        ScheduledStationName ScheduledStationNameCodeSequence ScheduledStudyLocation
        ScheduledStudyLocationAETitle ScheduledStudyStartDate ScheduledStudyStartTime
        ScheduledStudyStopDate ScheduledStudyStopTime SeriesDescription
        ServiceEpisodeDescription ServiceEpisodeID SetupTechniqueDescription
        ShieldingDeviceDescription SlideIdentifier SmokingStatus SourceManufacturer SpecialNeeds
        SpecimenAccessionNumber SpecimenDetailedDescription SpecimenShortDescription
        StationAETitle StructureSetDescription StructureSetName StudyArrivalDate
        StudyArrivalTime StudyComments StudyCompletionDate StudyCompletionTime StudyDescription
        StudyIDIssuer StudyReadDate StudyReadTime StudyVerifiedDate StudyVerifiedTime
        SubstanceAdministrationDateTime TelephoneNumberTrial TemplateLocalVersion
        TemplateVersion TextComments TextString TimeOfDocumentCreationOrVerbalTransactionTrial
        TimeOfLastCalibration TimeOfSecondaryCapture TimezoneOffsetFromUTC TopicAuthor
        TopicKeywords TopicSubject TopicTitle TransducerIdentificationSequence TreatmentSites
        UDISequence UniqueDeviceIdentifier VerbalSourceIdentifierCodeSequenceTrial
        VerbalSourceTrial VisitComments WaveformFilterDescription XRayDetectorLabel
    """,
    "U": """
        AcquisitionUID ConcatenationUID ConceptualVolumeUID ConstituentConceptualVolumeUID
        DeviceUID DigitalSignatureUID DimensionOrganizationUID DoseReferenceUID
        DosimetricObjectiveUID FailedSOPInstanceUIDList FiducialUID FrameOfReferenceUID
        InstanceCreatorUID IrradiationEventUID LargePaletteColorLookupTableUID
        ManufacturerDeviceClassUID MediaStorageSOPInstanceUID MultiplexGroupUID
        ObservationSubjectUIDTrial ObservationUID PaletteColorLookupTableUID PatientSetupUID
        PresentationDisplayCollectionUID PresentationSequenceCollectionUID PyramidUID
        RTTreatmentPhaseUID ReferencedConceptualVolumeUID ReferencedDoseReferenceUID
        ReferencedDosimetricObjectiveUID ReferencedFiducialsUID ReferencedFrameOfReferenceUID
        ReferencedGeneralPurposeScheduledProcedureStepTransactionUID
        ReferencedObservationUIDTrial ReferencedSOPInstanceUID ReferencedSOPInstanceUIDInFile
        ReferencedTreatmentPositionGroupUID RelatedFrameOfReferenceUID SOPInstanceUID
        SeriesInstanceUID SourceConceptualVolumeUID SourceFrameOfReferenceUID SpecimenUID
        StorageMediaFileSetUID StudyInstanceUID SynchronizationFrameOfReferenceUID TargetUID
        TemplateExtensionCreatorUID TemplateExtensionOrganizationUID TrackingUID TransactionUID
        TreatmentPositionGroupUID TreatmentSessionUID UID
    """,
    "ZD": """
        ContentCreatorName ContentDate ContentTime ContrastBolusAgent
        InstructionPerformedDateTime PatientID
    """,
    "XZ": """
        AcquisitionContextSequence AcquisitionDate AcquisitionTime BarcodeValue LabelText
        PatientSexNeutered ReferencedStudySequence RequestedProcedureDescription ReviewerName
        SourceSerialNumber TreatmentMachineName
    """,
    "XD": """
        AcquisitionDeviceProcessingDescription DateOfLastDetectorCalibration DetectorID
        EndAcquisitionDateTime FirstTreatmentDate InstanceCreationDate IntendedPhaseEndDate
        IntendedPhaseStartDate MostRecentTreatmentDate ObservationDateTime
        OperatorIdentificationSequence ProtocolName RTPlanDate RTPlanTime
        RTTreatmentApproachLabel SeriesDate SeriesTime StartAcquisitionDateTime
        TimeOfLastDetectorCalibration TreatmentDate TreatmentSite TreatmentTime
    """,
    "XZD": """
        AcquisitionDateTime DeviceSerialNumber InstanceCreationTime InstitutionCodeSequence
        InstitutionName OperatorsName ReferencedPerformedProcedureStepSequence StationName
    """,
    "XZU": """
        ReferencedImageSequence SourceImageSequence
    """,
}

# tag → action code, the table above in the form the code uses.
BASIC_PROFILE_ACTIONS: dict[int, str] = {
    tag_for_keyword(keyword): action for action, keywords in _BASIC_PROFILE_SPEC.items() for keyword in keywords.split()
}

# Value representations that identify on their own, whatever the attribute: person names,
# dates and times, and application entity titles (network names of scanners and workstations).
_IDENTIFYING_VRS = {"PN", "DA", "DT", "TM", "AE"}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
# Pixel data is the image itself, never shown as text.
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_MASK = "***"

# Dummy values for action D, by VR. Dates far in the past read as "not a real date".
_DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "LO": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "CS": "ANONYMIZED",
    "AE": "ANONYMIZED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}
# De-identification Method is LO: at most 64 characters per value, so one value per fact.
_DEIDENTIFICATION_METHOD = [
    "PS3.15 E.1-1 Basic Application Confidentiality Profile",
    "Private attributes removed",
    "Pixel data unchanged (burned-in text not removed)",
]


def _is_repeating_group_identifier(tag: BaseTag) -> bool:
    """Curve data (50xx,xxxx) and overlay data/comments (60xx,3000 / 60xx,4000)."""
    group, element = tag.group, tag.element
    if 0x5000 <= group <= 0x50FF and group % 2 == 0:
        return True
    return 0x6000 <= group <= 0x60FF and group % 2 == 0 and element in (0x3000, 0x4000)


def _is_registered_uid(value: object) -> bool:
    """True for UIDs defined by the standard (SOP classes, transfer syntaxes, coding schemes)."""
    values = value if isinstance(value, list | tuple) else [value]
    return all(str(v) in UID_dictionary for v in values)


def is_identifying(elem: DataElement) -> bool:
    """Whether a data element may identify a patient, a person or an institution."""
    tag = elem.tag
    if tag.is_private or tag in BASIC_PROFILE_ACTIONS or _is_repeating_group_identifier(tag):
        return True
    if elem.VR in _IDENTIFYING_VRS:
        return True
    if elem.VR == "UI":
        return not (elem.is_empty or _is_registered_uid(elem.value))
    return False


@dataclass(frozen=True)
class MetaRow:
    """One line of the metadata table; `value` is plain text, never markup."""

    tag: str  # "(0010,0010)", prefixed by ">" once per sequence level like dcmdump
    keyword: str  # "PatientName"; for private tags the dictionary name or "Private tag"
    vr: str
    value: str  # "***" when masked
    masked: bool
    depth: int  # 0 for the top level, 1 inside a sequence item, ...


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")


def _plain_text(elem: DataElement, max_chars: int) -> str:
    """A one-line text form of an element's value, cut to max_chars."""
    if elem.VR in _BINARY_VRS or isinstance(elem.value, bytes | bytearray):
        length = len(elem.value) if elem.value is not None else 0
        return f"<binary, {length} bytes>"
    value = elem.value
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    elif elem.VR == "UI" and value:
        uid = UID(str(value))
        text = f"{uid} ({uid.name})" if str(uid) in UID_dictionary else str(uid)
    else:
        text = "" if value is None else str(value)
    text = _CONTROL_CHARS.sub(" ", text).strip()
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _iter_rows(ds: Dataset, depth: int, max_chars: int, max_items: int, rows: list[MetaRow], max_rows: int) -> None:
    item_tag = f"{'>' * (depth + 1)}(FFFE,E000)"
    for tag in sorted(ds.keys()):
        if len(rows) >= max_rows:
            return
        if tag in _PIXEL_TAGS:
            continue
        tag_text = f"{'>' * depth}({tag.group:04X},{tag.element:04X})"
        try:
            elem = ds[tag]  # converting the raw value may fail on a damaged file
            vr = str(elem.VR)
            keyword = elem.keyword or elem.name or "Unknown"
            masked = is_identifying(elem)
            if vr != "SQ":
                value = _MASK if masked else _plain_text(elem, max_chars)
                rows.append(MetaRow(tag_text, keyword, vr, value, masked, depth))
                continue
            items = elem.value or []
            summary = f"<sequence, {len(items)} item(s)>"
            rows.append(MetaRow(tag_text, keyword, vr, _MASK if masked else summary, masked, depth))
            if masked:  # an identifying sequence is hidden whole, contents included
                continue
            for number, item in enumerate(items[:max_items], start=1):
                rows.append(MetaRow(item_tag, "Item", "", f"#{number}", False, depth + 1))
                _iter_rows(item, depth + 1, max_chars, max_items, rows, max_rows)
            if len(items) > max_items:
                more = f"… {len(items) - max_items} more item(s) not shown"
                rows.append(MetaRow(item_tag, "Item", "", more, False, depth + 1))
        except Exception:  # one malformed value must not break the whole table
            rows.append(MetaRow(tag_text, "", "", "<unreadable>", True, depth))


def metadata_rows(ds: Dataset, *, max_chars: int = 120, max_items: int = 3, max_rows: int = 2000) -> list[MetaRow]:
    """The file meta header and data set as flat rows of text, identifying values masked.

    Sequences are flattened (items shown up to `max_items`, deeper levels marked by ">" in the
    tag); a sequence listed in PS3.15 E.1-1 is shown as one masked row, contents hidden. Pixel
    data is skipped and other binary values show only their length.
    """
    rows: list[MetaRow] = []
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _iter_rows(file_meta, 0, max_chars, max_items, rows, max_rows)
    _iter_rows(ds, 0, max_chars, max_items, rows, max_rows)
    return rows


def _resolve_action(action: str, vr: str) -> str:
    """Pick one action from a combined code: keep the attribute (empty or dummy) when allowed.

    Keeping an emptied attribute rather than removing it keeps Type 2 attributes present, which
    strict readers expect; a UID gets a new UID; a sequence with only D/Z/X choices is emptied.
    """
    if vr == "UI" and "U" in action:
        return "U"
    if action == "XZU":
        return "RECURSE"  # references: keep the items, their UIDs are replaced one by one
    if "Z" in action:
        return "Z"
    if "D" in action:
        return "Z" if vr == "SQ" else "D"
    return "X"


def _dummy_for(elem: DataElement) -> object:
    if elem.VR in _DUMMY_BY_VR:
        return _DUMMY_BY_VR[elem.VR]
    if elem.VR in _BINARY_VRS:
        return b""
    return None  # numbers and anything else: empty


class _UidMap:
    """Old UID → new random UID, consistent within one copy so internal references still match."""

    def __init__(self) -> None:
        self._new: dict[str, str] = {}

    def __call__(self, value: object) -> object:
        if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
            return [self(v) for v in value]
        old = str(value)
        if not old or old in UID_dictionary:
            return value
        if old not in self._new:
            self._new[old] = generate_uid()
        return self._new[old]


def _deidentify_dataset(ds: Dataset, uid_map: _UidMap) -> None:
    """Apply the profile in place to one data set level, recursing into kept sequences."""
    for tag in list(ds.keys()):
        tag = BaseTag(tag)
        if tag.element == 0x0000:  # group lengths go stale once values change
            del ds[tag]
            continue
        if tag in _PIXEL_TAGS:
            continue
        elem = ds[tag]
        vr = str(elem.VR)
        if tag.is_private or _is_repeating_group_identifier(tag):
            del ds[tag]
            continue
        if tag in BASIC_PROFILE_ACTIONS:
            action = _resolve_action(BASIC_PROFILE_ACTIONS[tag], vr)
        elif vr in _IDENTIFYING_VRS:
            action = "Z"
        elif vr == "UI":
            action = "U"
        else:
            action = "RECURSE" if vr == "SQ" else "KEEP"

        if action == "X":
            del ds[tag]
        elif action == "Z":
            elem.value = Sequence() if vr == "SQ" else None
        elif action == "D":
            elem.value = _dummy_for(elem)
        elif action == "U":
            elem.value = uid_map(elem.value)
        elif action == "RECURSE" and vr == "SQ":
            for item in elem.value or []:
                _deidentify_dataset(item, uid_map)


def deidentify(ds: Dataset) -> bytes:
    """A de-identified copy of `ds` as DICOM file bytes, built in memory (nothing on disk).

    Basic Profile actions are applied at every sequence level, UIDs get new random values
    (consistently, so references inside the copy still agree), private and repeating-group
    (curve, overlay) attributes are removed, and the copy records that it was de-identified.
    The original data set is not modified. Pixel data is copied unchanged, including any text
    burned into it.
    """
    from primer.dicom import DicomError

    try:
        copy_ds = copy.deepcopy(ds)
        uid_map = _UidMap()
        copy_ds.remove_private_tags()
        _deidentify_dataset(copy_ds, uid_map)

        meta = FileMetaDataset()
        old_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        transfer_syntax = old_meta.get("TransferSyntaxUID") or _syntax_from_encoding(ds)
        meta.TransferSyntaxUID = transfer_syntax
        meta.MediaStorageSOPClassUID = (
            ds.get("SOPClassUID")
            or old_meta.get("MediaStorageSOPClassUID")
            or "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture, when the file does not say
        )
        if "SOPInstanceUID" not in copy_ds or not copy_ds.SOPInstanceUID:
            copy_ds.SOPInstanceUID = generate_uid()
        meta.MediaStorageSOPInstanceUID = copy_ds.SOPInstanceUID
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        copy_ds.file_meta = meta

        copy_ds.PatientIdentityRemoved = "YES"
        copy_ds.DeidentificationMethod = _DEIDENTIFICATION_METHOD
        method_code = Dataset()
        method_code.CodeValue = "113100"
        method_code.CodingSchemeDesignator = "DCM"
        method_code.CodeMeaning = "Basic Application Confidentiality Profile"
        copy_ds.DeidentificationMethodCodeSequence = Sequence([method_code])
        copy_ds.LongitudinalTemporalInformationModified = "REMOVED"
        copy_ds.PatientName = "ANONYMOUS"
        copy_ds.PatientID = "ANONYMOUS"

        buffer = io.BytesIO()
        copy_ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    except Exception as exc:  # a malformed source must surface as a user-facing error
        raise DicomError("deid_failed", {"error": f"{type(exc).__name__}: {exc}"[:300]}) from exc


# Secondary Capture Image Storage and its multi-frame variants (PS3.4 B.5): screenshots,
# scanned documents and exported views, where text is part of the picture.
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


def burned_in_text_risk(ds: Dataset) -> bool:
    """Whether the pixels may show identifying text that header de-identification leaves in place.

    True when the file says so (Burned In Annotation = YES), and always for ultrasound and
    secondary captures, where scanners print names, dates and institutions into the image and
    the flag is often missing or wrong.
    """
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        return True
    sop_class = str(ds.get("SOPClassUID", "") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    if sop_class == _SECONDARY_CAPTURE_PREFIX or sop_class.startswith(_SECONDARY_CAPTURE_PREFIX + "."):
        return True
    return str(ds.get("Modality", "") or "").strip().upper() in ("US", "SC")


def _syntax_from_encoding(ds: Dataset) -> UID:
    """The uncompressed transfer syntax matching how the data set was read."""
    implicit_vr, little_endian = getattr(ds, "original_encoding", (False, True))
    if implicit_vr:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little_endian is not False else ExplicitVRBigEndian


__all__ = [
    "BASIC_PROFILE_ACTIONS",
    "MetaRow",
    "burned_in_text_risk",
    "deidentify",
    "is_identifying",
    "metadata_rows",
]
